"""The double-entry token journal: its model, its rules and the service around them."""
