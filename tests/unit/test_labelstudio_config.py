from pathlib import Path

import pytest

from rlthf_backend.labelstudio.config import LabelConfigError, parse_label_config
from rlthf_backend.labelstudio.results import label_from_result, result_for_label, shown_label
from rlthf_backend.core.types import Judgment, JudgeStatus

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"


def test_shipped_pairwise_config():
    cfg = parse_label_config((CONFIGS / "pairwise.xml").read_text())
    assert cfg.kind == "pairwise"
    assert cfg.fields == ("prompt", "answer1", "answer2")
    assert (cfg.control_name, cfg.control_to_name) == ("comparison", "comparison")
    assert not cfg.supports_tie


def test_shipped_choices_config():
    cfg = parse_label_config((CONFIGS / "choices.xml").read_text())
    assert cfg.kind == "choices"
    assert cfg.fields == ("prompt", "answer1", "answer2")
    assert (cfg.control_name, cfg.control_to_name) == ("preference", "prompt")
    assert cfg.choice_values == {"a": "A", "b": "B", "tie": "Tie"}


def test_choices_alias_is_what_label_studio_stores():
    xml = """<View><Text name="q" value="$question"/><Text name="x" value="$left"/><Text name="y" value="$right"/>
    <Choices name="pick" toName="q"><Choice value="Response A" alias="first"/>
    <Choice value="Response B" alias="second"/></Choices></View>"""
    cfg = parse_label_config(xml)
    assert cfg.choice_values == {"a": "first", "b": "second"}
    assert cfg.fields == ("question", "left", "right")


def test_pairwise_picks_prompt_by_name_among_several_texts():
    xml = """<View><Text name="system" value="$system"/><Text name="prompt" value="$p"/>
    <Text name="r1" value="$r1"/><Text name="r2" value="$r2"/><Pairwise name="cmp" toName="r1,r2"/></View>"""
    assert parse_label_config(xml).fields == ("p", "r1", "r2")


@pytest.mark.parametrize(
    "xml, message",
    [
        ("", "empty"),
        ("<View><Text name='a'", "not valid XML"),
        ("<View><Text name='t' value='$t'/><Choices name='c' toName='t'><Choice value='Yes'/></Choices></View>",
         "no preference control"),
        ("<View><Text name='p' value='$p'/><Pairwise name='c' toName='p'/></View>", "two Text names"),
        ("<View><Text name='p' value='$p'/><Text name='a' value='$a'/><Pairwise name='c' toName='a,zz'/></View>",
         '"zz"'),
        ("<View><Text name='a' value='$a'/><Text name='b' value='$b'/><Pairwise name='c' toName='a,b'/></View>",
         "no prompt"),
        ("<View><Text name='p' value='$p'/><Text name='a' value='$a'/><Choices name='c' toName='p'>"
         "<Choice value='A'/><Choice value='B'/></Choices></View>", "exactly two response"),
    ],
)
def test_unsupported_configs_say_what_is_wrong(xml, message):
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(xml)


def _judgment(label, prob, ab=None, ba=None):
    return Judgment(label=label, prob=prob, status=JudgeStatus.OK, model="m", verdict_ab=ab, verdict_ba=ba)


def test_results_round_trip_both_shapes():
    for name in ("pairwise.xml", "choices.xml"):
        cfg = parse_label_config((CONFIGS / name).read_text())
        for label in ("a", "b"):
            assert label_from_result(cfg, result_for_label(cfg, label)) == label
    choices = parse_label_config((CONFIGS / "choices.xml").read_text())
    assert label_from_result(choices, result_for_label(choices, "tie")) == "tie"
    assert result_for_label(choices, "b")[0]["value"] == {"choices": ["B"]}


def test_pairwise_result_matches_label_studio_shape():
    cfg = parse_label_config((CONFIGS / "pairwise.xml").read_text())
    assert result_for_label(cfg, "b") == [
        {"from_name": "comparison", "to_name": "comparison", "type": "pairwise", "value": {"selected": "right"}}
    ]


def test_tie_on_pairwise_shows_first_order_side_with_half_probability():
    cfg = parse_label_config((CONFIGS / "pairwise.xml").read_text())
    assert shown_label(cfg, _judgment("tie", 0.5, ab="b", ba="a")) == ("b", 0.5)
    assert shown_label(cfg, _judgment("a", 0.83, ab="a", ba="a")) == ("a", 0.83)
    choices = parse_label_config((CONFIGS / "choices.xml").read_text())
    assert shown_label(choices, _judgment("tie", 0.5, ab="b", ba="a")) == ("tie", 0.5)


def test_label_from_result_ignores_other_controls():
    cfg = parse_label_config((CONFIGS / "choices.xml").read_text())
    rating = {"from_name": "strength", "to_name": "prompt", "type": "rating", "value": {"rating": 2}}
    assert label_from_result(cfg, [rating]) is None
    assert label_from_result(cfg, [rating, *result_for_label(cfg, "a")]) == "a"
