"""The sandbox's starting data: a support-bot project with three metrics and a Lab.

The three metrics of project 1376 match the example files in the repository's `metrics/`
folder field for field, so `plan` against a fresh sandbox reports them in sync, and the
Lab holds enough labelled reviews for the optimiser to propose something for 1562.
A second project (2001) makes project scoping observable.
"""

from __future__ import annotations

from cekura_gitops.sandbox.state import SandboxState

__all__ = ["SUPPORT_PROJECT", "BILLING_PROJECT", "seed"]

SUPPORT_PROJECT = 1376
BILLING_PROJECT = 2001

GREETING_DESCRIPTION = (
    "Score TRUE if the agent addressed the caller by their name within the first 3 turns.\n"
    "Score FALSE otherwise.\n"
    "\n"
    'A title alone ("Mr.", "Ms.") does not count; a first name or a full name does.'
)
SATISFACTION_DESCRIPTION = (
    "You are reviewing a support call between an AI agent and a customer.\n"
    "Score TRUE if, by the end of the call, the customer's request was resolved or a\n"
    "concrete next step was agreed, and the customer did not express frustration that\n"
    "went unaddressed. Score FALSE otherwise."
)
REFUND_CODE = """\
transcript = data.get("transcript", "").lower()
mentions_refund = "refund" in transcript
quotes_window = "30 days" in transcript or "thirty days" in transcript
_result = (not mentions_refund) or quotes_window
_explanation = (
    "No refund discussed." if not mentions_refund
    else "Refund window quoted." if quotes_window
    else "Refund discussed without the 30-day window."
)
"""

# (test set, expected, actual, feedback, transcript) for metric 1562's Lab.
GREETING_REVIEWS = [
    (456, True, True, "", "Agent: Hi Maria, thanks for calling Acme Health. Caller: Hi!"),
    (456, False, False, "", "Agent: Thanks for calling. Caller: I need to move my visit."),
    (456, True, True, "", "Agent: Good morning, Mr. Okafor. How can I help?"),
    (
        456,
        False,
        True,
        "The agent used the caller's name only when saying goodbye; that is after the "
        "first 3 turns, so score FALSE.",
        "Agent: Hello, how can I help? ... Agent: Goodbye, Priya, have a nice day.",
    ),
    (789, True, True, "", "Agent: Hi Tom! I see you called about your bill."),
    (
        789,
        False,
        True,
        'Reading the name back to confirm it ("Is that Jon with an h?") is not a greeting; '
        "score FALSE unless the agent greets the caller by name.",
        "Agent: Can I have your name? Caller: John. Agent: Is that John with an h?",
    ),
    (789, False, False, "", "Agent: Hi there! Caller: Hi, I'm calling for my mother."),
]


def seed(state: SandboxState) -> None:
    """Load the starting data into an empty `state`."""
    state.add_project(SUPPORT_PROJECT, "Support bot")
    state.add_project(BILLING_PROJECT, "Billing assistant")

    state.add_metric(
        id=1562,
        slug="caller_greeted_by_name_1562",
        project=SUPPORT_PROJECT,
        agents=[42],
        name="Was the caller greeted by name",
        type="llm_judge",
        eval_type="binary",
        description=GREETING_DESCRIPTION,
        evaluation_trigger="custom",
        trigger_type="llm_judge",
        evaluation_trigger_prompt=("Only evaluate calls where the caller's name is known to the agent."),
        observability_enabled=True,
        simulation_enabled=True,
    )
    for test_set, expected, actual, feedback, transcript in GREETING_REVIEWS:
        state.add_review(
            1562,
            expected,
            actual,
            feedback,
            test_set,
            transcript=transcript,
            test_set_name="Greeting regressions" if test_set == 456 else "Weekend calls",
        )

    state.add_metric(
        id=1563,
        slug="customer_satisfaction_1563",
        project=SUPPORT_PROJECT,
        agents=[42],
        name="Customer satisfaction",
        type="llm_judge",
        eval_type="binary",
        description=SATISFACTION_DESCRIPTION,
        evaluation_trigger="always",
        observability_enabled=True,
        simulation_enabled=False,
    )
    state.add_review(1563, True, True, "", transcript="Caller: Perfect, thank you so much!")
    state.add_review(1563, False, False, "", transcript="Caller: I want a supervisor. Now.")
    state.add_review(
        1563,
        False,
        True,
        'A caller who says "fine, whatever" and hangs up is frustrated; score FALSE.',
        transcript="Agent: Anything else? Caller: Fine, whatever. *hangs up*",
    )
    # Not labelled yet: the Lab has it, the optimiser ignores it.
    state.add_review(1563, None, True, "", transcript="Caller: OK, bye.")

    state.add_metric(
        id=1564,
        slug="refund_policy_code_1564",
        project=SUPPORT_PROJECT,
        agents=[42],
        name="Refund window quoted",
        type="custom_code",
        eval_type="binary",
        description="",
        custom_code=REFUND_CODE,
        evaluation_trigger="always",
        observability_enabled=True,
        simulation_enabled=True,
    )
    state.add_review(1564, True, True, "", transcript="Agent: Refunds are possible within 30 days.")
    state.add_review(1564, True, True, "", transcript="Agent: Your order ships tomorrow.")
    state.add_review(
        1564,
        False,
        True,
        '"Within a month" is not the 30-day window; the agent must say 30 days.',
        transcript="Agent: You can get a refund within a month of purchase.",
    )

    state.add_metric(
        id=1601,
        slug="billing_dispute_acknowledged_1601",
        project=BILLING_PROJECT,
        agents=[77],
        name="Billing dispute acknowledged",
        type="llm_judge",
        eval_type="binary",
        description=(
            "Score TRUE if the agent acknowledges the disputed charge and explains the next\n"
            "step of the dispute process. Score FALSE otherwise."
        ),
        evaluation_trigger="always",
        observability_enabled=True,
        simulation_enabled=True,
    )
    state.add_review(1601, True, True, "", transcript="Agent: I see the $40 charge; I'll open a dispute.")
    state.add_review(1601, False, False, "", transcript="Agent: Please pay the full balance.")

    state.add_cron_job(
        SUPPORT_PROJECT,
        [1563],
        "0 3 * * 1",
        name="Weekly satisfaction tune-up (report only)",
        auto_apply=False,
        notify_on="both",
    )
