"""What the replay of each tau2 task must do and produce, from `tasks.json` and `expected_outcomes.json`.

The calls of a task are its gold actions (`evaluation_criteria.actions` of `tasks.json`:
tool name and arguments), in order. 45 tasks list only the calls made after the customer
was authenticated; the desk's policy refuses user data before that, so the plan adds the
identification the customer's `known_info` allows (email if given, else name and zip)
before the first call that needs it. These added calls are not gold and are counted
apart.

Each call carries the reference's outcome of the action with the same id
(`expected_outcomes.json`): the call the reference made and the exact output it returned.
The two files are checked against each other by the replay, call by call (see
`replay.CallReport`), so editing either one is noticed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..policy import AUTHENTICATED_TOOLS
from ..store import DATA_DIR, Record
from ..tools import IDENTIFICATION_TOOLS
from .database import CanonicalDB

__all__ = ["ExpectedCall", "Reference", "TaskPlan", "load_plans", "plan_task"]


@dataclass(kw_only=True, frozen=True)
class Reference:
    """What the reference implementation did for one action (from `expected_outcomes.json`)."""

    name: str
    """The tool it called."""
    arguments: Mapping[str, Any]
    """The arguments it called it with."""
    output: str
    """The exact output it returned."""


@dataclass(kw_only=True, frozen=True)
class ExpectedCall:
    """One tool call the replay makes, and what the reference returned for it."""

    call_id: str
    """The gold `action_id`, or `<task id>_identify` for an added identification."""
    name: str
    """The tool, from `tasks.json`."""
    arguments: Mapping[str, Any]
    """The arguments, from `tasks.json`."""
    reference: Reference | None
    """The reference's outcome of the action with this id; `None` if it has none."""
    gold: bool = True
    """False for an identification the task's gold list leaves out."""


@dataclass(kw_only=True, frozen=True)
class TaskPlan:
    """What the replay of one task does and must produce."""

    task_id: str
    """The tau2 task id (`"0"` to `"113"`)."""
    opening: str
    """The customer's first message: their known information and reason for calling."""
    calls: tuple[ExpectedCall, ...]
    """The calls, in order."""
    final_db_sha256: str
    """The canonical hash of the database after the task, from the reference."""

    @property
    def gold_calls(self) -> tuple[ExpectedCall, ...]:
        """The calls that are the task's gold actions."""
        return tuple(call for call in self.calls if call.gold)


def _identification(task_id: str, known_info: str, user: Record) -> ExpectedCall:
    """Return the identification of `user` that the customer's known information allows.

    Raises:
        ValueError: If `known_info` holds neither the user's email nor their name and zip.
    """
    name, zip_code = user["name"], user["address"]["zip"]
    arguments: dict[str, str]
    if user["email"].lower() in known_info.lower():
        tool, arguments = "find_user_id_by_email", {"email": user["email"]}
    elif all(part in known_info for part in (name["first_name"], name["last_name"], zip_code)):
        tool = "find_user_id_by_name_zip"
        arguments = {"first_name": name["first_name"], "last_name": name["last_name"], "zip": zip_code}
    else:
        raise ValueError(
            f"Task {task_id} acts for user {user['user_id']} without authenticating them, and its known_info "
            "gives neither their email nor their name and zip code; add the identification to the task."
        )
    reference = Reference(name=tool, arguments=arguments, output=user["user_id"])
    return ExpectedCall(call_id=f"{task_id}_identify", name=tool, arguments=arguments, reference=reference, gold=False)


def plan_task(task: Mapping[str, Any], outcome: Mapping[str, Any], initial: CanonicalDB) -> TaskPlan:
    """Return the replay plan of one task.

    Args:
        task: The task, from `tasks.json`.
        outcome: Its reference outcome, from `expected_outcomes.json`.
        initial: The unchanged database, to find whose orders the task acts on.

    Returns:
        The plan: the gold calls, with an identification first where the policy needs
        one and the gold list has none.

    Raises:
        ValueError: If the task acts for a user its known information cannot identify.
    """
    task_id, instructions = task["id"], task["user_scenario"]["instructions"]
    references = {
        action["action_id"]: Reference(name=action["name"], arguments=action["arguments"], output=action["output"])
        for action in outcome["actions"]
    }
    calls: list[ExpectedCall] = []
    authenticated = False
    for action in task["evaluation_criteria"]["actions"]:
        name, arguments, reference = action["name"], action["arguments"], references.get(action["action_id"])
        if name in AUTHENTICATED_TOOLS and not authenticated:
            owner = arguments.get("user_id")
            if owner is None and arguments.get("order_id") in initial["orders"]:
                owner = initial["orders"][arguments["order_id"]]["user_id"]
            if owner in initial["users"]:  # an unknown order or user: the tool itself fails
                calls.append(_identification(task_id, instructions["known_info"] or "", initial["users"][owner]))
                authenticated = True
        if name in IDENTIFICATION_TOOLS and reference is not None and not reference.output.startswith("Error: "):
            authenticated = True
        calls.append(ExpectedCall(call_id=action["action_id"], name=name, arguments=arguments, reference=reference))
    opening = "\n".join(text for text in (instructions["known_info"], instructions["reason_for_call"]) if text)
    return TaskPlan(task_id=task_id, opening=opening, calls=tuple(calls), final_db_sha256=outcome["final_db_sha256"])


def load_plans(initial: CanonicalDB, data_dir: Path = DATA_DIR) -> tuple[TaskPlan, ...]:
    """Return the plans of all tasks of `tasks.json`, in its order.

    Args:
        initial: The unchanged database (`DatabaseTemplate.initial`).
        data_dir: The folder of `tasks.json` and `expected_outcomes.json`.

    Returns:
        One plan per task.

    Raises:
        ValueError: If `expected_outcomes.json` has no outcome for a task, or a task acts
            for a user its known information cannot identify.
    """
    tasks = json.loads((data_dir / "tasks.json").read_text(encoding="utf-8"))
    outcomes = json.loads((data_dir / "expected_outcomes.json").read_text(encoding="utf-8"))
    missing = [task["id"] for task in tasks if task["id"] not in outcomes]
    if missing:
        raise ValueError(f"expected_outcomes.json in {data_dir} has no outcome for tasks {missing}; regenerate it.")
    return tuple(plan_task(task, outcomes[task["id"]], initial) for task in tasks)
