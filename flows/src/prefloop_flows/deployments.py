"""The flows as Prefect deployments, served by one long-running process (`prefloop deployments`).

`collect` runs on its schedule (daily at 03:00 UTC by default); the others run when asked — from the
dashboard, the Prefect client (`run_deployment("improve/on-demand")`) or plain HTTP
(`POST /api/deployments/{id}/create_flow_run`). No Docker or work pool is needed to serve them;
on a GPU cluster the same flows go to a Prefect work pool instead (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from prefloop_flows.flows import (
    collect_flow,
    evaluate_and_deploy_flow,
    export_flow,
    improve_flow,
    rollback_flow,
    train_flow,
)
from prefloop_flows.settings import FlowsSettings

ON_DEMAND = "on-demand"


def deployments(settings: FlowsSettings) -> list[Any]:
    collect = collect_flow.to_deployment(
        name="daily",
        cron=settings.flows_collect_cron,
        description="The daily QA test: the live model's bad answers into the queue.",
    )
    on_demand = [
        flow.to_deployment(name=ON_DEMAND, description=flow.description)
        for flow in (improve_flow, train_flow, export_flow, evaluate_and_deploy_flow, rollback_flow)
    ]
    return [collect, *on_demand]


def serve_deployments(settings: FlowsSettings) -> None:
    from prefect import serve

    serve(*deployments(settings))
