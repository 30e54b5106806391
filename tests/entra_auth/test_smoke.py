import pytest

pytestmark = pytest.mark.django_db


def test_valid_v2_token_reaches_the_view(fake_entra, api_client):
    token = fake_entra.token()
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.json()


def test_valid_v1_token_reaches_the_view(fake_entra, api_client):
    token = fake_entra.token(version="1.0")
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.json()
