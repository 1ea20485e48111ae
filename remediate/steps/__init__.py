"""Step kinds: one module per domain; ``base.kinds()`` is the registry."""
