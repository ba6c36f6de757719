"""Business rules of the token store; nothing here imports Flask's request globals."""
