import pytest

from llmasos.chat import FALLBACK_STOP, ChatMessage, check_messages, render_chat
from llmasos.engine.base import EngineInfo
from llmasos.errors import InvalidRequestError


def info(template=None):
    return EngineInfo("m", 1, 64, 64, 10, chat_template=template, bos_token="<s>", eos_token="</s>")


def test_without_a_template_the_fallback_transcript_is_used():
    messages = check_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
        ]
    )
    prompt = render_chat(messages, info())
    assert prompt.text == "Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Bye\n\nAssistant:"
    assert prompt.stop == (FALLBACK_STOP,)


def test_the_models_template_is_rendered_without_a_second_start_token():
    template = (
        "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    prompt = render_chat([ChatMessage("user", "Hi")], info(template))
    assert prompt.text == "<user>Hi<assistant>"
    assert prompt.stop == ()


def test_a_template_that_raises_is_reported_as_a_bad_request():
    template = "{{ raise_exception('no system messages') }}"
    with pytest.raises(InvalidRequestError, match="no system messages"):
        render_chat([ChatMessage("system", "x")], info(template))


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ("hi", "messages"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": "ok"}, 3], "messages[1]"),
    ],
)
def test_bad_messages_name_the_field(messages, field):
    with pytest.raises(InvalidRequestError) as error:
        check_messages(messages)
    assert error.value.field == field
