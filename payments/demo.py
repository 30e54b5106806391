"""Demo tenants used by ``make run`` and the walk-through in docs/sample.md."""

DEMO_TENANT_A = "11111111-1111-4111-8111-111111111111"
DEMO_TENANT_B = "22222222-2222-4222-8222-222222222222"
