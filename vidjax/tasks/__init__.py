"""Tasks beyond clip classification (temporal action localization:
`localization`)."""
