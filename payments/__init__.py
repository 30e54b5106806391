"""A sample multi-tenant payments API built only on ``entra_auth``'s public API."""
