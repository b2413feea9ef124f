"""The catalog as the pipeline and a support engineer use it: lookup precedence, ambiguous
subcodes, categories and severities, source typos, string codes, search, lint, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from triage import catalog
from triage.catalog import (
    CatalogError,
    category_advice,
    documented_row,
    lookup,
    lookup_name,
    search,
    table_sizes,
)
from triage.catalog_files import lint
from triage.cli.catalog import main
from triage.model import CONTEXTS, Category, Guidance, Match, Severity

REPO = Path(__file__).resolve().parent.parent
SEED_000 = "000_2fa7e0829c1b24b8.txt"
SEED_001 = "001_ba7421ad63927b8c.txt"
SEED_003 = "003_82b23087768919e6.txt"
PAGE_000 = "Call setup issues - Failed to create CallAgent"
PAGE_001 = (
    "Troubleshooting call end response codes for Calling SDK, Call Automation SDK, PSTN, Chat SDK, "
    "and SMS SDK"
)


def _related(g: Guidance) -> list[tuple[str, str]]:
    return [(r.table, r.message) for r in g.related]


# -- the committed catalog -------------------------------------------------------------------------


def test_lint_is_clean_on_the_committed_catalog() -> None:
    assert lint() == []


def test_every_seed_table_is_in_the_catalog() -> None:
    assert set(table_sizes()) == {
        "create-callagent", "calling-sdk", "calling-sdk-codes", "call-end", "call-end-codes",
        "call-automation", "generic-4xx", "generic-5xx", "generic-6xx", "generic-subcodes",
        "pstn-0", "pstn-4xx", "pstn-5xx", "pstn-603", "chat", "sms", "teams-phone-5804xx",
        "teams-phone", "info-calling-sdk", "info-call-automation", "tips",
        # written from pages without a code table (email statuses, Meta's WhatsApp codes)
        "email-delivery", "whatsapp-meta",
    }  # fmt: skip


def test_catalog_files_name_no_machine_paths() -> None:
    for path in (REPO / "catalog").iterdir():
        assert str(REPO.parent) not in path.read_text(encoding="utf-8"), path.name


# -- precedence, one test per level -------------------------------------------------------------------


def test_exact_pair_in_a_table_of_the_events_context() -> None:
    g = lookup(410, 3112, "calling-sdk")
    assert (g.match, g.table) == (Match.EXACT_IN_CONTEXT, "call-end")
    assert g.message.startswith("Call setup failed due to network configuration problem")
    assert g.category is Category.EXPECTED and g.severity is Severity.WARNING
    assert g.source == f"{PAGE_001} · Calling End call codes and subcodes"
    assert g.seeds == (SEED_001,)
    assert g.docs_url.startswith("https://learn.microsoft.com/en-us/azure/communication-services/")


def test_exact_pair_in_another_contexts_table() -> None:
    g = lookup(410, 3112, "call-automation")
    assert (g.match, g.table) == (Match.EXACT, "call-end")


def test_subcode_alone_answers_from_the_generic_subcodes() -> None:
    g = lookup(400, 8535, "call-automation")
    assert (g.match, g.table, g.message) == (Match.SUBCODE, "generic-subcodes", "Invalid File Format")
    assert (g.code, g.subcode) == (400, 8535)


def test_subcode_alone_answers_from_a_row_that_owns_the_subcode() -> None:
    g = lookup(None, 3112)
    assert (g.match, g.table) == (Match.SUBCODE, "call-end")
    assert "answered by the entry documented as 410/3112" in g.flags


def test_code_alone_answers_from_a_code_only_table_of_the_context() -> None:
    g = lookup(480, 99999, "calling-sdk")
    assert (g.match, g.table, g.message) == (
        Match.CODE,
        "call-end-codes",
        "Remote client endpoint not registered.",
    )
    assert [t for t, _ in _related(g)] == ["calling-sdk-codes", "info-calling-sdk"]


def test_code_alone_prefers_the_contexts_own_table() -> None:
    assert lookup(429, 1, "chat").table == "chat"
    assert lookup(429, 1, "call-automation").table == "info-call-automation"


def test_code_class_when_only_the_class_is_known() -> None:
    client = lookup(495, 1)
    assert (client.match, client.message) == (Match.CODE_CLASS, "Client error (400-499)")
    assert client.category is Category.UNKNOWN and client.severity is Severity.WARNING
    assert client.advice.startswith("A 4xx Code represents a client error.")
    assert category_advice(Category.UNKNOWN) in client.advice
    server = lookup(599, 3)
    assert (server.category, server.severity) == (Category.UNEXPECTED_SERVER, Severity.ERROR)


def test_unknown_code_799_is_honest_and_still_gives_category_advice() -> None:
    g = lookup(799)
    assert (g.match, g.category, g.severity) == (Match.UNKNOWN, Category.UNKNOWN, Severity.WARNING)
    assert g.message == "Code 799 is not in the catalog."
    assert "createCallAgent API and display a warning message" in g.advice
    assert "UnexpectedClientError, it is still possible" in g.advice
    assert "ExpectedError, there may be errors in the precondition" in g.advice
    assert g.source.startswith(PAGE_000) and SEED_000 in g.seeds


def test_no_code_at_all_is_unknown() -> None:
    assert lookup(None).match is Match.UNKNOWN


def test_category_advice_by_category() -> None:
    assert category_advice(Category.SUCCESS) == ""
    assert "after a retry" in category_advice(Category.UNEXPECTED_CLIENT)
    assert "after a retry" not in category_advice(Category.EXPECTED)
    assert "precondition" in category_advice(Category.EXPECTED)


# -- one subcode, several meanings ----------------------------------------------------------------------


def test_10057_is_dual_persona_only_for_an_8_acs_participant_and_callee_setup_failure_otherwise() -> None:
    chosen = documented_row("AddParticipantFailed", 408, 10057, "8:acs:6c0d", "addParticipants failed")
    assert chosen == ("teams-phone", "teams-phone:408/10057")
    teams = lookup(408, 10057, "teams-phone", "AddParticipantFailed", chosen[1])
    assert (teams.match, teams.table) == (Match.EXACT_IN_CONTEXT, "teams-phone")
    assert "dual persona" in teams.advice
    assert "chosen by the source's condition: AddParticipantFailed, participant 8:acs:…" in teams.flags
    assert [t for t, _ in _related(teams)] == ["call-end"]
    for participant in ("8:orgid:1", "28:orgid:1", "4:+14255550123", ""):
        assert documented_row("AddParticipantFailed", 408, 10057, participant, "") is None, participant
    assert documented_row("RemoveParticipantFailed", 408, 10057, "8:acs:6c0d", "") is None
    for context in CONTEXTS:  # no event met the condition: the row answers none of them
        if context in catalog._OWN_NUMBERING:
            continue  # email, WhatsApp, Job Router: no ACS call code means anything there
        assert lookup(408, 10057, context, "AddParticipantFailed").table == "call-end", context
    sdk = lookup(408, 10057, "calling-sdk")
    assert (sdk.table, sdk.match) == ("call-end", Match.EXACT_IN_CONTEXT)
    assert sdk.message.startswith("Call failed, callee failed to finalize call setup")
    assert [t for t, _ in _related(sdk)] == ["teams-phone"]
    assert sdk.also == ()  # a row whose condition does not hold is related, never shown as a meaning


def test_8522_is_resource_not_found_with_404_and_missing_configuration_with_405() -> None:
    assert lookup(404, 8522, "call-automation").message.startswith(
        "A generic error code that indicates that the resource isn't found"
    )
    assert lookup(405, 8522, "call-automation").message == "Missing configuration"
    other = lookup(500, 8522, "call-automation")
    assert (other.match, other.message) == (Match.SUBCODE, "Not Found")
    assert [m for _, m in _related(other)][1] == "Missing configuration"


def test_510403_is_a_blocked_pstn_call_or_a_spam_block_by_context() -> None:
    pstn = lookup(403, 510403, "pstn")
    assert (pstn.table, pstn.match) == ("pstn-4xx", Match.EXACT_IN_CONTEXT)
    assert pstn.message.startswith("Call blocked:")
    assert [t for t, _ in _related(pstn)] == ["call-end"]
    sdk = lookup(403, 510403, "calling-sdk")
    assert sdk.message == "Call ended, previously marked as a spam and now blocked."
    assert [t for t, _ in _related(sdk)] == ["pstn-4xx"]


def test_8523_is_teams_phones_caller_id_limit_only_with_its_documented_message() -> None:
    said = "Invalid request, SourceCallerIdNumber and SourceDisplayName are not supported..."
    for event in ("AddParticipantFailed", "CreateCallFailed"):
        chosen = documented_row(event, 400, 8523, "4:+14255550123", said)
        assert chosen == ("teams-phone", "teams-phone:400/8523")
    # Compared without case or spacing: the documented text, as a service may print it.
    assert documented_row("AddParticipantFailed", 400, 8523, "", said.upper().replace(" ", "  ")) is not None
    teams = lookup(400, 8523, "teams-phone", "AddParticipantFailed", "teams-phone:400/8523")
    assert teams.message == "Invalid request: SourceCallerIdNumber and SourceDisplayName aren't supported"
    assert "set the second parameter in the CallInvite object to null" in teams.advice
    assert [t for t, _ in _related(teams)] == ["call-automation"]
    assert documented_row("AddParticipantFailed", 400, 8523, "4:+1", "Invalid request body.") is None
    for context in ("call-automation", "teams-phone"):
        automation = lookup(400, 8523, context, "AddParticipantFailed")
        assert automation.message.startswith(
            "A generic error code that indicates that something in the request body"
        )
        assert "teams-phone" in [t for t, _ in _related(automation)]


def test_the_same_pair_in_two_tables_is_answered_in_a_fixed_order_without_context() -> None:
    assert lookup(408, 10057).table == "call-end"
    assert lookup(403, 510403).table == "call-end"  # contexts.toml: default
    assert lookup(403, 510403, "call-automation").table == "pstn-4xx"  # contexts.toml: prefer


# -- categories and severities --------------------------------------------------------------------------


def test_200_7000_is_success_and_raises_no_alert() -> None:
    g = lookup(200, 7000, "call-automation")
    assert (g.category, g.severity, g.message) == (Category.SUCCESS, Severity.NONE, "Graceful")


def test_2xx_with_subcode_0_is_success() -> None:
    for code in (200, 202):
        g = lookup(code, 0, "call-automation")
        assert (g.category, g.severity) == (Category.SUCCESS, Severity.NONE)


def test_a_success_subcode_does_not_hide_a_failure_code() -> None:
    for code, subcode in ((480, 0), (410, 7000), (500, 4097)):
        g = lookup(code, subcode, "calling-sdk")
        assert g.severity is not Severity.NONE, (code, subcode)
        assert g.match is Match.CODE


def test_severity_follows_the_category_everywhere() -> None:
    expected = {
        Category.SUCCESS: Severity.NONE,
        Category.EXPECTED: Severity.WARNING,
        Category.UNKNOWN: Severity.WARNING,
        Category.UNEXPECTED_CLIENT: Severity.ERROR,
        Category.UNEXPECTED_SERVER: Severity.ERROR,
    }
    loaded = catalog._catalog()
    answers = [lookup(code, subcode, context) for code, subcode in loaded.pairs for context in CONTEXTS]
    answers += [lookup(200, subcode) for subcode in loaded.generic] + [
        lookup(code) for code in (150, 250, 450, 550, 650)
    ]
    for g in answers:
        assert g.severity is expected[g.category]
    assert {g.category for g in answers} == set(expected)


def test_a_misspelled_category_is_read_as_the_category_and_flagged() -> None:
    g = lookup(410, 3100, "calling-sdk")
    assert (g.category, g.severity) == (Category.UNEXPECTED_CLIENT, Severity.ERROR)
    assert g.flags == ("source typo: category spelled 'UnxpectedClientError'",)


def test_sms_4007_opt_out_is_warning_with_opt_out_advice() -> None:
    g = lookup(4007, None, "sms")
    assert (g.category, g.severity) == (Category.EXPECTED, Severity.WARNING)
    assert g.message == "The Destination/To number opted out of receiving messages from you."
    assert g.advice.startswith("Mark the Destination/To number as opted out")


def test_sms_2000_delivered_is_success() -> None:
    assert lookup(2000, None, "sms").severity is Severity.NONE


def test_sms_5002_no_delivery_report_is_a_warning_at_most() -> None:
    assert lookup(5002, None, "sms").severity in (Severity.NONE, Severity.WARNING)


def test_sms_platform_failures_are_errors() -> None:
    for code in (5000, 5001, 9999):
        assert lookup(code, None, "sms").category is Category.UNEXPECTED_SERVER


def test_sms_table_keeps_both_sources() -> None:
    g = lookup(4007, None, "sms")
    assert g.seeds == (SEED_001, SEED_003)
    assert g.source == f"{PAGE_001} · SMS error codes"


# -- source oddities -----------------------------------------------------------------------------------


def test_pstn_typos_are_kept_as_written_and_flagged() -> None:
    typo = lookup(497, 560487, "pstn")
    assert typo.table == "pstn-4xx" and any("487 is meant" in f for f in typo.flags)
    busy = lookup(486, 60486, "pstn")
    assert busy.message == "The called number was busy" and any("560486 is meant" in f for f in busy.flags)


def test_pstn_typos_do_not_stop_the_real_codes_being_answered() -> None:
    hung_up = lookup(487, 560487, "pstn")
    assert (hung_up.table, hung_up.match, hung_up.severity) == ("pstn-4xx", Match.SUBCODE, Severity.NONE)
    assert lookup(486, 560486, "pstn").table == "call-end"


def test_other_source_oddities_are_flagged() -> None:
    assert lookup(None, 8571).flags == ("the source lists 8571 out of order, between 8568 and 8569",)
    assert any("twice" in f for f in lookup(404, 8522, "call-automation").flags)
    assert any("twice" in f for f in lookup(405, 8522, "call-automation").flags)
    assert any("Duplicate Single Dialout" in f for f in lookup(400, 8559, "call-automation").flags)


def test_a_message_the_source_writes_as_bullets_is_one_line_in_the_guidance() -> None:
    g = lookup(480, 560480, "pstn")
    assert g.message == "- No answer from the called user. - Called user temporary unavailable."
    assert g.advice.splitlines()[0] == "- Double check why the called party didn't respond."


def test_a_code_listed_three_times_answers_with_the_first_and_relates_the_others() -> None:
    g = lookup(400, None, "call-automation")
    assert (g.table, g.message) == ("info-call-automation", "Bad request")
    assert _related(g)[:2] == [
        ("info-call-automation", "Play Failed"),
        ("info-call-automation", "Recognize Failed"),
    ]


# -- Teams string code, setup problems, search -----------------------------------------------------------


def test_teams_string_error_code_is_found_by_name() -> None:
    g = lookup_name("UserLicenseNotPresentForbidden")
    assert (g.table, g.code, g.match) == ("teams-phone", 403, Match.EXACT)
    assert "Teams license" in g.advice
    assert lookup_name("userlicensenotpresentforbidden", "teams-phone").match is Match.EXACT_IN_CONTEXT
    assert lookup_name("NoSuchCode").match is Match.UNKNOWN


def test_a_teams_string_code_is_not_the_answer_for_a_plain_403() -> None:
    assert lookup(403, None, "teams-phone").table != "teams-phone"


def test_setup_problems_without_an_event_code_are_found_by_search() -> None:
    assert (
        search("Teams Channel in Azure Bot")[0].message
        == "Bad Requests when adding a Teams Channel in Azure Bot"
    )
    assert (
        search("lacks a service principal")[0].message
        == "Consent blocked due to Microsoft Entra App permission"
    )
    assert len(search("No Incoming Call notification")) == 2
    assert lookup(400, None, "teams-phone").table != "teams-phone"  # a portal error is no event's 400


def test_search_finds_tips_and_other_wordings() -> None:
    assert search("CallbackUri")[0].table == "tips"
    assert [g.code for g in search("has opted out")] == [4007]  # seed 003's wording
    assert search("") == []


def test_teams_phone_5804xx_rows_carry_the_sections_fix() -> None:
    g = lookup(404, 580462, "teams-phone")
    assert g.message == "No enabled tenant capabilities"
    assert g.advice.startswith("Assign Communications Credits license to tenant")
    assert "Sign in to Microsoft 365 Admin Center" in g.advice
    assert "https://learn.microsoft.com/en-us/microsoftteams/set-up-communications-credits" in g.advice


# -- the hot path --------------------------------------------------------------------------------------


def test_lookup_is_cached_dictionary_work() -> None:
    first = lookup(400, 8535, "call-automation")
    for _ in range(100_000):
        lookup(400, 8535, "call-automation")
    loaded = catalog._catalog()
    assert isinstance(loaded.cache, dict) and isinstance(loaded.pairs, dict)
    assert loaded.cache[(400, 8535, "call-automation", None, "")] is first
    assert lookup(400, 8535, "call-automation") is first


def test_every_context_answers_every_documented_pair_with_a_subcode() -> None:
    loaded = catalog._catalog()
    for (code, subcode), rows in loaded.pairs.items():
        if subcode is None or all(r.entry.when for r in rows):
            continue  # code-only lines and rows with conditions: tests/test_advice_in_context.py
        for context in CONTEXTS:
            found = lookup(code, subcode, context)
            if context in catalog._OWN_NUMBERING:  # Meta's codes, email statuses: their own tables only
                assert found.table in ("", *(t.id for t in loaded.files.tables if t.context == context))
            else:
                assert found.match in (Match.EXACT, Match.EXACT_IN_CONTEXT)


def test_an_unknown_context_is_an_error_that_names_the_valid_ones() -> None:
    with pytest.raises(CatalogError, match="call-automation"):
        lookup(400, 1, "voice")  # type: ignore[arg-type]


# -- lint on broken files --------------------------------------------------------------------------------


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(REPO / "catalog", target)
    return target


def test_lint_reports_schema_errors_with_file_and_place(catalog_copy: Path) -> None:
    path = catalog_copy / "chat.toml"
    path.write_text(path.read_text().replace('context = "chat"', 'context = "fax"'))
    problems = lint(catalog_copy)
    assert len(problems) == 1 and problems[0].startswith("chat.toml: table.0.context:")


def test_lint_reports_a_conflict_inside_a_table(catalog_copy: Path) -> None:
    with (catalog_copy / "chat.toml").open("a") as f:
        f.write('\n[[table.entry]]\ncode = 401\nmessage = "Something else"\n')
    assert lint(catalog_copy) == [
        "chat: conflict: 2 entries for 401; merge them, or mark the later ones known_duplicate = true"
        " with a flag if the source really lists them twice"
    ]


def test_lint_reports_the_same_setup_problem_twice(catalog_copy: Path) -> None:
    with (catalog_copy / "tips.toml").open("a") as f:
        f.write('\n[[table.entry]]\nmessage = "Actions on PSTN endpoints aren\'t working"\nadvice = "x"\n')
    problems = lint(catalog_copy)
    assert len(problems) == 1 and problems[0].startswith("tips: conflict: 2 entries for message ")


def test_lint_reports_entries_in_no_table_bad_urls_and_unordered_tables(catalog_copy: Path) -> None:
    (catalog_copy / "stray.toml").write_text('[[entry]]\ncode = 1\nmessage = "x"\n')
    path = catalog_copy / "sms.toml"
    path.write_text(path.read_text().replace('docs_url = "https://learn', 'docs_url = "http://learn', 1))
    (catalog_copy / "extra.toml").write_text(
        '[[table]]\nid = "extra"\ntitle = "x"\ncontext = "sms"\nseeds = ["001_ba7421ad63927b8c.txt"]\n'
        'docs_url = "https://learn.microsoft.com/en-us/x"\n[[table.entry]]\ncode = 1\nmessage = "x"\n'
    )
    problems = lint(catalog_copy)
    assert any(p.startswith("stray.toml: entries in no table") for p in problems)
    assert any(p.startswith("sms.toml: table.0.docs_url:") for p in problems)
    fixed = path.read_text().replace("http://learn", "https://learn")
    path.write_text(fixed)
    (catalog_copy / "stray.toml").unlink()
    assert lint(catalog_copy) == ["contexts.toml: default does not list table 'extra'"]


def test_lint_reports_conditions_that_say_nothing_or_name_a_row_twice_and_unknown_code_only_tables(
    catalog_copy: Path,
) -> None:
    path = catalog_copy / "chat.toml"
    text = path.read_text()
    path.write_text(text.replace("code = 401\n", "code = 401\nwhen = {}\n", 1))
    assert lint(catalog_copy) == [
        "chat.toml: table.0.entry.0.when: Value error, a [when] needs at least one condition:"
        " events, participants or message"
    ]
    path.write_text(text.replace("code = 401\n", 'code = 401\nwhen = { participants = ["acs"] }\n', 1))
    assert lint(catalog_copy)[0].startswith(
        "chat.toml: table.0.entry.0.when.participants.0: String should match"
    )
    with path.open("a") as f:  # the same (table, code) with conditions twice: an event could not name one
        f.write('\n[[table.entry]]\ncode = 401\nmessage = "x"\nknown_duplicate = true\nflags = ["x"]\n'
                'when = { message = "y" }\n')  # fmt: skip
    path.write_text(path.read_text().replace('participants = ["acs"]', 'message = "z"', 1))
    assert lint(catalog_copy) == [
        "chat:401: two rows with [when] have this table and code; give one of them up"
    ]
    path.write_text(text)
    contexts = catalog_copy / "contexts.toml"
    contexts.write_text(contexts.read_text().replace('pstn = ["pstn-0",', 'pstn = ["pstn-9",', 1))
    assert lint(catalog_copy) == ["contexts.toml: no table 'pstn-9'"]


def test_lint_reports_a_missing_catalog(tmp_path: Path) -> None:
    assert lint(tmp_path) == [f"{tmp_path}: no catalog files (*.toml)"]


# -- the CLI ----------------------------------------------------------------------------------------------


def test_explain_prints_guidance_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "410", "3112", "--context", "calling-sdk"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("410/3112  ExpectedError · severity warning · matched: exact-in-context")
    assert "Call setup failed due to network configuration problem" in out
    assert f"Source: {PAGE_001} · Calling End call codes and subcodes (table call-end)" in out
    assert "Docs:   https://learn.microsoft.com/" in out


def test_explain_shows_related_meanings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "408", "10057", "--context", "calling-sdk"]) == 0
    out = capsys.readouterr().out
    assert (
        "Also documented as:\n  - teams-phone: 408/10057 addParticipants failed for participant 8:acs"
        " (only when: AddParticipantFailed, participant 8:acs:…)" in out
    )


def test_explain_json_has_the_guidance_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "4007", "--context", "sms", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"code", "subcode", "message", "category", "severity", "advice", "source", "match"} <= set(data)
    assert (data["code"], data["subcode"], data["severity"], data["match"]) == (
        4007,
        None,
        "warning",
        "exact-in-context",
    )
    assert {"table", "docs_url", "flags", "related"} <= set(data)


def test_explain_a_string_code_and_search(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "UserLicenseNotPresentForbidden"]) == 0
    assert "UserLicenseNotPresentForbidden when agent logs in" in capsys.readouterr().out
    assert main(["explain", "--search", "lacks a service principal", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["message"] == "Consent blocked due to Microsoft Entra App permission"


def test_explain_an_unknown_code_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "799"]) == 0
    assert "Code 799 is not in the catalog." in capsys.readouterr().out


def test_catalog_lint_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "lint"]) == 0
    assert capsys.readouterr().out.startswith("catalog ok: ")


def test_catalog_lint_command_fails_on_a_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(catalog, "CATALOG_DIR", tmp_path)
    assert main(["catalog", "lint"]) == 1


def test_check_seeds_command_without_seeds_fails(tmp_path: Path) -> None:
    assert main(["catalog", "check-seeds", str(tmp_path / "none")]) == 1


def test_the_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "triage.cli.catalog", "explain", "410", "3112", "--json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout)["table"] == "call-end"


def test_play_failed_400_8535_gets_the_wav_16khz_mono_advice_written_for_play_failed() -> None:
    plain = lookup(400, 8535, "call-automation")
    for_event = lookup(400, 8535, "call-automation", "PlayFailed")
    assert plain.advice == "" and plain.match is for_event.match  # the precedence answer is unchanged
    assert "WAV" in for_event.advice and "16KHz" in for_event.advice
    assert any("advice for PlayFailed" in f for f in for_event.flags)


def test_event_advice_follows_the_codes_own_advice_and_tips_apply_only_without_a_coded_entry() -> None:
    g = lookup(404, 8522, "call-automation", "PlayFailed")
    own, added = g.advice.split("\n\n", 1)
    assert own.startswith("Double check call status")
    assert "Wave file (.wav)" in added  # the PlayAudio tip: no PlayFailed entry documents 404


def test_an_event_without_its_own_entries_changes_nothing() -> None:
    assert lookup(410, 3112, "call-automation", "CallDisconnected") == lookup(410, 3112, "call-automation")
