"""Import every table module so ``Base.metadata`` is complete (for Alembic and test set-up)."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "distributor.issues.models",
    "subscribers.models",
    "subscribers.counts",
    "distributor.sending.models",
    "distributor.readers.models",
    "distributor.bounces.models",
    "distributor.channels.wechat.models",
    "distributor.wechat.models",
    "distributor.staff.models",
    "distributor.segments.models",
    "distributor.outbox",
    "distributor.webhooks.models",
    "distributor.ops.models",
    "distributor.automations.models",
    "distributor.snapshot_counts",
)


def load_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
