"""Purchases: checkout, fulfilment from signed events, the sandbox and Stripe."""
