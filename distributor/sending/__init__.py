"""The sending engine: plan deliveries, claim them, dispatch them to a channel, record status."""
