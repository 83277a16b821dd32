"""Per-strategy workers: the strategy runner, the order manager (journal, states), pre-trade
risk and the dead man's switch."""
