"""Request plumbing shared by every blueprint: context, errors, CSRF, limits, headers."""
