"""Generation backends: one interface (`base.Backend`), one module per provider."""
