"""AWS Lambda entry point of a tradeship bundle: ``lambda_handler.lambda_handler``.

EventBridge Scheduler invokes it with ``{"scheduled_time": "<aws.scheduler.scheduled-time>"}``
(the template's target Input), so a retried or duplicated delivery carries the same
intended time, hence the same decision slot and the same client order ids. Credentials come
from the Secrets Manager secret named by TRADESHIP_SECRET_ARN (or the environment).
A run with less than TRADESHIP_MIN_REMAINING_SECONDS left only reconciles.
"""

from __future__ import annotations

import bundle_runtime

# Import the strategy during the init phase, not on the clock of the first invocation.
bundle_runtime.load_strategy()


def lambda_handler(event, context):
    bundle_runtime.load_aws_credentials()
    remaining = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000.0
    return bundle_runtime.handle(
        "lambda",
        scheduled=bundle_runtime.lambda_event_time(event),
        remaining_seconds=remaining,
    )
