"""Units of every asset and total cash are conserved across all agents at every step."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import base_raw, build, run_and_check_conservation


@st.composite
def scenarios(draw):
    n_assets = draw(st.integers(1, 3))
    assets = [
        {
            "id": f"A{i}",
            "class": "crypto",
            "tier": "peripheral",
            "venue": "spot",
            "price": draw(st.floats(1.0, 1e5)),
            "daily_vol": draw(st.floats(0.005, 0.1)),
            "adv_usd": draw(st.floats(1e7, 1e11)),
        }
        for i in range(n_assets)
    ]
    shocks, populations = [], []
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, n_assets - 1))
        asset, adv = f"A{index}", assets[index]["adv_usd"]
        hour = draw(st.integers(0, 22))
        if draw(st.booleans()):
            shocks.append(
                {
                    "type": "flow",
                    "asset": asset,
                    "start": f"2026-01-05T{hour:02d}:00:00Z",
                    "duration": f"{draw(st.integers(5, 120))}min",
                    "notional_usd": draw(st.floats(-2.0, 2.0)) * adv,
                }
            )
        else:
            shocks.append(
                {
                    "type": "news",
                    "time": f"2026-01-05T{hour:02d}:10:00Z",
                    "returns": {asset: draw(st.floats(-0.3, 0.1))},
                }
            )
    for i in range(draw(st.integers(0, 3))):
        populations.append(
            {
                "type": "stop_loss",
                "name": f"book{i}",
                "asset": f"A{draw(st.integers(0, n_assets - 1))}",
                "side": draw(st.sampled_from(["long", "short"])),
                "accounts": draw(st.integers(1, 5000)),
                "notional_usd": draw(st.floats(1e6, 2e10)),
                "stop_distance": {
                    "dist": "uniform",
                    "low": 0.0,
                    "high": draw(st.floats(0.01, 0.3)),
                },
            }
        )
    retreat = draw(st.booleans())
    if retreat:
        shocks.append(
            {
                "type": "mm_retreat",
                "assets": ["A0"],
                "start": "2026-01-05T06:00:00Z",
                "duration": "6h",
                "depth_multiplier": draw(st.floats(0.05, 1.0)),
                "gap_pct": draw(st.floats(0.0, 5.0)),
            }
        )
    raw = base_raw(
        assets=assets,
        shocks=shocks,
        populations=populations,
        clock={
            "start": "2026-01-05T00:00:00Z",
            "end": "2026-01-06T00:00:00Z",
            "step": draw(st.sampled_from(["1min", "5min", "1h"])),
        },
        market={"max_rounds": draw(st.integers(1, 50))},
    )
    return build(raw), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_units_and_cash_are_conserved_at_every_step(case):
    run_and_check_conservation(*case)


def test_the_feb_2026_preset_conserves_units_and_cash():
    from deleverage import load_scenario

    run_and_check_conservation(load_scenario("feb-2026"), 7)
