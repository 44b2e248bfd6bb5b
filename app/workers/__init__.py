"""The durable prediction queue and the worker loop: only workers run models."""
