"""Request and response shapes of the payments API, with strict money parsing."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from .currencies import MINOR_UNITS, minor_units
from .models import Payment, Refund

# Plain decimal strings only: no sign, exponent, spaces or thousands separators.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
DESCRIPTION_MAX_LENGTH = 500
# Integer digits plus the currency's decimals: what every supported database stores exactly
# (SQLite reads decimals back with 15 significant digits).
MAX_SIGNIFICANT_DIGITS = 15


def parse_amount(value: Any, currency: str) -> Decimal:
    """A positive amount given as a string, with at most the currency's minor-unit digits."""
    if not isinstance(value, str):
        raise serializers.ValidationError('Give the amount as a string, e.g. "12.50".')
    match = _AMOUNT.fullmatch(value)
    if not match:
        raise serializers.ValidationError(
            'The amount must be a plain decimal number such as "12.50" '
            "(no sign, exponent or separators; at most 15 integer digits)."
        )
    digits = minor_units(currency)
    fraction = match.group(2) or ""
    if digits is not None and len(fraction) - 1 > digits:
        raise serializers.ValidationError(
            f"{currency} amounts have at most {digits} decimal places."
        )
    if digits is not None and len(match.group(1)) + digits > MAX_SIGNIFICANT_DIGITS:
        raise serializers.ValidationError(
            f"{currency} amounts have at most {MAX_SIGNIFICANT_DIGITS - digits} integer digits."
        )
    amount = Decimal(value)
    if amount <= 0:
        raise serializers.ValidationError("The amount must be greater than zero.")
    return amount


class _StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never passes silently."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, and only that: DRF's CharField would turn 123 into "123"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PaymentCreateSerializer(_StrictSerializer):
    amount = serializers.JSONField()
    currency = serializers.CharField(max_length=3, trim_whitespace=False)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False, default=""
    )

    def validate_currency(self, value: str) -> str:
        if not _CURRENCY.fullmatch(value) or value not in MINOR_UNITS:
            raise serializers.ValidationError("Use an ISO 4217 currency code such as EUR.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["amount"] = parse_amount(attrs["amount"], attrs["currency"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"amount": exc.detail}) from None
        return attrs


class RefundCreateSerializer(_StrictSerializer):
    amount = serializers.JSONField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["amount"] = parse_amount(attrs["amount"], self.context["payment"].currency)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"amount": exc.detail}) from None
        return attrs


class MoneyField(serializers.Field):
    """A ``Decimal`` rendered as a string with the currency's exact minor-unit digits."""

    def __init__(self, currency_source: str = "currency", **kwargs: Any) -> None:
        self.currency_source = currency_source
        kwargs["source"] = kwargs.get("source", None)
        super().__init__(read_only=True, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return instance

    def to_representation(self, instance: Any) -> str:
        value = getattr(instance, self.field_name)
        currency = instance
        for part in self.currency_source.split("."):
            currency = getattr(currency, part)
        return str(Decimal(value).quantize(Decimal(1).scaleb(-(minor_units(currency) or 0))))


class RefundSerializer(serializers.ModelSerializer):
    amount = MoneyField(currency_source="payment.currency")

    class Meta:
        model = Refund
        fields = ["id", "payment", "amount", "created_by_oid", "created_by_app_id", "created_at"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    amount = MoneyField()
    refunded_amount = MoneyField()
    tenant_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "tenant_id",
            "amount",
            "currency",
            "description",
            "status",
            "refunded_amount",
            "created_by_oid",
            "created_by_app_id",
            "created_at",
        ]
        read_only_fields = fields
