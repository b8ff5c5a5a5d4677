"""ReflexBlue Integrations: integrations, their secret keys and signed webhook delivery."""

__version__ = "0.1.0"
