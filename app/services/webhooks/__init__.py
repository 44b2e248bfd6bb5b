"""Signed callbacks (webhooks): when a prediction that names a `callback_url` finishes, its result
is POSTed there, signed the Standard Webhooks way with its organization's secret, and retried
with backoff for a bounded time. The URL guard (`urls`, `transport`) keeps those requests away
from private networks; the delivery state lives on the prediction row (`deliveries`), so every
path that finishes a prediction is delivered by the workers' dispatcher
(`app/workers/webhooks.py`) without a hook of its own."""
