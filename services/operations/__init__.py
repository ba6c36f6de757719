"""The operator's dashboard: access, figures, and actions that leave an audit record."""
