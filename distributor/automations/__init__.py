"""Welcome mail and simple automations: per list, steps ("when they join, send issue X"; "3 days
after joining, send issue Y") sent to each reader who joins, exactly once per reader and step.

Built on the sending engine, not beside it: each step owns one send, and the tick adds a delivery
to it for each reader whose moment came, in the transaction that claims the reader's unique row
for the step (:mod:`distributor.automations.steps`). Rendering, claiming, retries, pausing and
status are then the send's.
"""
