"""The entity schema: which fields each input entity has, and their types.

This is the data contract of the design brief, defined once. The checker
validates `deal.amount`-style references against it; the runtime's loaders
validate input tables against it. A repository's `revplan.toml` may add
custom CRM fields:

    [fields.deal]
    segment_tier = "string"
    multi_year = "bool"

>>> SCHEMA.entity("deal").field("amount").type
<FieldType.MONEY: 'money'>
"""

from __future__ import annotations

import enum
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class FieldType(str, enum.Enum):
    STRING = "string"
    MONEY = "money"  # exact decimal, in the row's `currency` (or the plan's)
    NUMBER = "number"  # exact decimal without a unit
    PERCENT = "percent"  # exact decimal fraction, 0.4 = 40 %
    INTEGER = "integer"
    DATE = "date"
    BOOL = "bool"


class Field(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FieldType
    required: bool = True
    doc: str = ""


class Entity(BaseModel):
    """One input table. `name` is how plans refer to a row (`deal.amount`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    table: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    optional_table: bool = False
    doc: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entities: tuple[Entity, ...]

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.name == name or e.table == name), None)

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entities)

    def converted_fields(self) -> frozenset[str]:
        """Custom money fields of deals: in the deal's currency, so converted and credited as its amount is."""
        return frozenset(f.name for f in self.entity("deal").fields if f.type is FieldType.MONEY and f.name != "amount")

    def with_extra_fields(self, extra: dict[str, dict[str, FieldType]]) -> Schema:
        """A copy with custom fields added (optional: old data lacks them)."""
        entities = []
        for entity in self.entities:
            added = tuple(
                Field(name=name, type=type_, required=False, doc="custom field from revplan.toml")
                for name, type_ in extra.get(entity.name, {}).items()
                if entity.field(name) is None
            )
            entities.append(entity.model_copy(update={"fields": entity.fields + added}))
        return Schema(entities=tuple(entities))


def _f(name: str, type_: FieldType, doc: str, required: bool = True) -> Field:
    return Field(name=name, type=type_, required=required, doc=doc)


S, M, N, P, I, D, B = (
    FieldType.STRING,
    FieldType.MONEY,
    FieldType.NUMBER,
    FieldType.PERCENT,
    FieldType.INTEGER,
    FieldType.DATE,
    FieldType.BOOL,
)

SCHEMA = Schema(
    entities=(
        Entity(
            name="rep",
            table="reps",
            key=("id",),
            doc="The roster: one row per rep.",
            fields=(
                _f("id", S, "rep id"),
                _f("name", S, "display name"),
                _f("manager_id", S, "the rep's manager (a rep id); empty at the top", required=False),
                _f("role", S, "e.g. AE, SDR, SE, CSM, Manager"),
                _f("segment", S, "e.g. Enterprise, Commercial", required=False),
                _f("region", S, "e.g. NA, EMEA", required=False),
                _f("currency", S, "pay currency (ISO 4217)"),
                _f("hire_date", D, "first active day"),
                _f("termination_date", D, "last active day; empty while employed", required=False),
                _f("target_incentive", M, "annual target incentive (variable pay at 100 %)"),
            ),
        ),
        Entity(
            name="deal",
            table="deals",
            key=("id",),
            doc="Opportunities from the CRM; amounts in the deal's currency.",
            fields=(
                _f("id", S, "deal id"),
                _f("owner_rep_id", S, "the owning rep"),
                _f("account_id", S, "the account", required=False),
                _f("amount", M, "booking value (ACV unless the company says otherwise)"),
                _f("currency", S, "ISO 4217 code of amount"),
                _f("stage", S, "e.g. closed_won, closed_lost, open"),
                _f("product", S, "e.g. new_logo, expansion, renewal", required=False),
                _f("close_date", D, "booking date"),
                _f("cancel_date", D, "set when the deal was cancelled", required=False),
                _f("paid_date", D, "set when the customer paid", required=False),
            ),
        ),
        Entity(
            name="split",
            table="deal_splits",
            key=("deal_id", "rep_id"),
            optional_table=True,
            doc="Split credit: percentages per deal must sum to 100 %.",
            fields=(
                _f("deal_id", S, "the split deal"),
                _f("rep_id", S, "a credited rep"),
                _f("percent", P, "share of the deal, 0.6 = 60 %"),
            ),
        ),
        Entity(
            name="account",
            table="accounts",
            key=("id",),
            optional_table=True,
            doc="Customer accounts, for territories and quota potential.",
            fields=(
                _f("id", S, "account id"),
                _f("name", S, "account name"),
                _f("country", S, "ISO country code", required=False),
                _f("state", S, "state or province", required=False),
                _f("industry", S, "industry", required=False),
                _f("employees", I, "head count", required=False),
                _f("potential", M, "estimated revenue potential (plan currency)", required=False),
            ),
        ),
        Entity(
            name="quota",
            table="quotas",
            key=("rep_id", "period"),
            optional_table=True,
            doc="Explicit quotas per rep and period (e.g. 2027-Q1).",
            fields=(
                _f("rep_id", S, "rep id"),
                _f("period", S, "period label: 2027, 2027-H1, 2027-Q1 or 2027-01"),
                _f("amount", M, "quota amount (plan currency)"),
            ),
        ),
        Entity(
            name="fx_rate",
            table="fx_rates",
            key=("date", "from", "to"),
            optional_table=True,
            doc="Daily exchange rates: 1 `from` = rate `to`.",
            fields=(
                _f("date", D, "day the rate applies to"),
                _f("from", S, "source currency"),
                _f("to", S, "target currency"),
                _f("rate", N, "units of `to` per unit of `from`"),
            ),
        ),
        Entity(
            name="activity",
            table="activities",
            key=("id",),
            optional_table=True,
            doc="Sales activities (meetings, calls), e.g. for SDR plans.",
            fields=(
                _f("id", S, "activity id"),
                _f("rep_id", S, "the rep who did it"),
                _f("type", S, "e.g. meeting, call, email"),
                _f("date", D, "when it happened"),
                _f("points", N, "weight of the activity", required=False),
                _f("account_id", S, "the account", required=False),
            ),
        ),
        Entity(
            name="rep_assignment",
            table="rep_assignments",
            key=("rep_id", "start_date"),
            optional_table=True,
            doc="Dated roster attributes: a rep's role, segment, region, target incentive and manager from "
            "start_date to end_date "
            "(both included). A rep with rows here is in the plans their assignment of each day selects; "
            "on days no row covers, in none. A rep without rows keeps the reps table's attributes.",
            fields=(
                _f("rep_id", S, "rep id"),
                _f("start_date", D, "first day of the assignment"),
                _f("end_date", D, "last day of the assignment; empty while it lasts", required=False),
                _f("role", S, "role from start_date, e.g. AE, SDR"),
                _f("segment", S, "segment from start_date", required=False),
                _f("region", S, "region from start_date", required=False),
                _f("target_incentive", M, "annual target incentive from start_date; empty: the reps row's",
                   required=False),
                _f("manager_id", S, "the rep's manager from start_date (roll-up credit); empty: the reps row's",
                   required=False),
            ),
        ),
        Entity(
            name="mbo_score",
            table="mbo_scores",
            key=("rep_id", "period"),
            optional_table=True,
            doc="Management-by-objectives scores a manager entered.",
            fields=(
                _f("rep_id", S, "rep id"),
                _f("period", S, "period label"),
                _f("score", P, "achievement, 0.9 = 90 %"),
            ),
        ),
    )
)


class ConfigError(Exception):
    """A problem in revplan.toml; the CLI turns it into a diagnostic."""


# Columns the calculators add beside an entity's own fields on the rows a measure reads (a deal credited to a rep
# in a period, an activity in a period): a custom field of that name would be read in their place.
RESERVED_FIELDS = {
    "deal": ("rep_id", "period", "period_index", "share", "amount_fx"),
    "activity": ("period", "period_index"),
}


def load_schema(config_path: Path | None) -> Schema:
    """The built-in schema plus custom fields declared in `revplan.toml`."""
    if config_path is None or not config_path.is_file():
        return SCHEMA
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{config_path}: {error}") from None
    extra: dict[str, dict[str, FieldType]] = {}
    for entity_name, fields in config.get("fields", {}).items():
        if SCHEMA.entity(entity_name) is None:
            known = ", ".join(SCHEMA.entity_names)
            raise ConfigError(f"{config_path}: [fields.{entity_name}]: unknown entity; known: {known}")
        entity = SCHEMA.entity(entity_name)
        for field_name, type_name in fields.items():
            if entity.field(field_name) is not None:
                raise ConfigError(f"{config_path}: fields.{entity_name}.{field_name}: {entity_name}.{field_name} is a "
                                  "built-in field already (README.md: 'Data contract'); remove it here")
            if field_name in RESERVED_FIELDS.get(entity.name, ()):
                raise ConfigError(f"{config_path}: fields.{entity_name}.{field_name}: the name {field_name!r} is "
                                  f"reserved on {entity_name} rows (revplan adds a column of that name to them); "
                                  "give the column another name in the data")
            try:
                extra.setdefault(entity.name, {})[field_name] = FieldType(type_name)
            except ValueError:
                types = ", ".join(t.value for t in FieldType)
                raise ConfigError(
                    f"{config_path}: fields.{entity_name}.{field_name}: unknown type {type_name!r}; use one of {types}"
                ) from None
    return SCHEMA.with_extra_fields(extra)
