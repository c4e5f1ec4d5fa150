"""Drives the official `datarobot` Python client against the fake DataRobot API.

Run by testkit/tests/conformance/datarobot_python.rs. Inputs come from the environment (tokens
never go into argv): DR_API_URL, DR_APP_URL, DR_CA_FILE, DR_ADMIN_TOKEN, DR_USER_TOKEN,
DR_TOGGLE_ID (a deployment to deactivate and activate again). Prints one JSON object on stdout;
the Rust test compares it with the fake's own state and history.
"""

import json
import os
import sys
import traceback
import warnings


def error_of(exc):
    return {
        "type": type(exc).__name__,
        "statusCode": getattr(exc, "status_code", None),
        "message": str(exc),
    }


def main():
    import datarobot as dr
    from datarobot.errors import ClientError

    api_url = os.environ["DR_API_URL"]
    app_url = os.environ["DR_APP_URL"]
    ca_file = os.environ["DR_CA_FILE"]
    admin = os.environ["DR_ADMIN_TOKEN"]
    user = os.environ["DR_USER_TOKEN"]
    toggle_id = os.environ["DR_TOGGLE_ID"]
    out = {"clientVersion": dr.__version__}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dr.Client(endpoint=api_url, token=admin, ssl_verify=ca_file)
        out["clientWarnings"] = [str(w.message) for w in caught]

    # Everything, following `next` across pages.
    listed = dr.Deployment.list()
    out["listed"] = [
        {"id": d.id, "label": d.label, "status": d.status, "importance": d.importance}
        for d in listed
    ]
    # One explicit page.
    page = dr.Deployment.list(offset=100, limit=50)
    out["explicitPage"] = [d.id for d in page]

    deployment = dr.Deployment.get(toggle_id)
    out["before"] = deployment.status
    out["model"] = deployment.model
    deployment.deactivate(max_wait=60)
    out["afterDeactivate"] = deployment.status
    out["afterDeactivateFetched"] = dr.Deployment.get(toggle_id).status
    deployment.activate(max_wait=60)
    out["afterActivate"] = deployment.status

    # The Bearer scheme (the client's token_type), on a cheap call.
    dr.Client(endpoint=api_url, token=admin, ssl_verify=ca_file, token_type="Bearer")
    out["bearerListCount"] = len(dr.Deployment.list(limit=3))

    # The app URL is not an endpoint the client accepts: it asks `<app>/version/`.
    try:
        dr.Client(endpoint=app_url, token=admin, ssl_verify=ca_file)
        out["appUrl"] = {"accepted": True}
    except Exception as exc:  # noqa: BLE001 - the exception type is what is being recorded
        out["appUrl"] = {"accepted": False, **error_of(exc)}

    # A wrong token fails at client creation (its version check).
    try:
        dr.Client(endpoint=api_url, token="not-a-valid-token", ssl_verify=ca_file)
        out["wrongToken"] = {"accepted": True}
    except ClientError as exc:
        out["wrongToken"] = {"accepted": False, **error_of(exc)}

    # A valid token without the MLOps admin role may read but not change a status.
    dr.Client(endpoint=api_url, token=user, ssl_verify=ca_file)
    as_user = dr.Deployment.get(toggle_id)
    out["userPermissions"] = as_user.permissions
    try:
        as_user.deactivate(max_wait=30)
        out["userDeactivate"] = {"accepted": True}
    except ClientError as exc:
        out["userDeactivate"] = {"accepted": False, **error_of(exc)}

    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - report anything to the Rust test on stderr
        traceback.print_exc()
        sys.exit(1)
