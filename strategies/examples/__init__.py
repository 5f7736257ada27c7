"""Example strategies that teach: `lookahead` shows what `tradeship check lookahead` catches."""
