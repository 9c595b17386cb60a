"""Judge prices, looked up once per model: the job's override, else litellm's price map.

An unknown price is `None`, never zero: the score row records the cost as unknown.
"""

from pydantic import BaseModel, ConfigDict, Field

from evaluators.judges.quiet_litellm import litellm_module


class Price(BaseModel):
    """USD per million tokens (how providers publish prices)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    input_usd_per_mtok: float = Field(ge=0, le=1_000_000)
    output_usd_per_mtok: float = Field(ge=0, le=1_000_000)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


FREE = Price(input_usd_per_mtok=0.0, output_usd_per_mtok=0.0)
FREE_PROVIDERS = frozenset({"local"})


def litellm_price(model: str) -> Price | None:
    if model.split("/", 1)[0] in FREE_PROVIDERS:
        return FREE
    litellm = litellm_module()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception for unmapped models
        return None
    input_cost, output_cost = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if input_cost is None or output_cost is None:
        return None
    return Price(input_usd_per_mtok=input_cost * 1e6, output_usd_per_mtok=output_cost * 1e6)


def price_for(model: str, overrides: dict[str, Price]) -> Price | None:
    return overrides.get(model) or litellm_price(model)
