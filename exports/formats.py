"""The shape of each export format, one record at a time.

Every function turns a result (or a preference) into one record or raises
Invalid with the reason; an invalid row is reported in the manifest and never
written, so every file loads in the tool that consumes it without edits.
"""

from dataclasses import dataclass
from datetime import datetime

from batches.models import Request
from core.text import quoted
from curation.models import Annotation, Preference, annotation_of

FINETUNING_ROLES = {"system", "user", "assistant"}


class Invalid(Exception):
    """This row cannot be written in this format; the message says why."""


@dataclass(frozen=True)
class Curated:
    """A result and its curation as plain data.

    Exports read stars and tags per chunk of rows into this, rather than with
    prefetch_related, whose result-star back references form cycles that only
    the full garbage collector frees: memory then grows with the export.
    """

    result: Request
    annotation: Annotation | None
    tags: list[str]
    stars: list[tuple[str, datetime]]  # (reviewer, starred at), oldest first

    @classmethod
    def of(cls, result: Request) -> "Curated":
        """From the ORM relations: for a handful of rows (the admin's selection)."""
        annotation = annotation_of(result)
        return cls(
            result=result,
            annotation=annotation,
            tags=[tag.name for tag in annotation.tags.all()] if annotation else [],
            stars=[
                (star.user.get_username(), star.created_at)
                for star in result.stars.select_related("user").order_by("created_at")
            ],
        )


def chat_messages(result: Request) -> list[dict]:
    """The conversation sent, as plain {role, content} messages OpenAI's
    fine-tuning accepts: `developer` becomes `system`, content becomes text.

    Stored bodies can hold anything; a message this format cannot carry
    faithfully (another role, images, tool calls) makes the row invalid rather
    than being dropped or turned into text it never was.
    """
    messages = []
    for message in result.messages:
        role = message.get("role")
        if role == "developer":
            role = "system"
        if not isinstance(role, str) or role not in FINETUNING_ROLES:
            raise Invalid(f"message role {quoted(role)} is not system, user or assistant")
        if message.get("tool_calls"):
            raise Invalid(f"an {role} message with tool calls")
        content = _text(message.get("content"), f"a {role} message")
        if not content.strip():
            raise Invalid(f"an empty {role} message")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise Invalid("no user message")
    return messages


def assistant_message(result: Request) -> dict:
    if result.status != Request.Status.COMPLETED or result.status_code != 200:
        raise Invalid(f"the request did not complete ({result.status})")
    response = result.response if isinstance(result.response, dict) else {}
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Invalid("the response has no choice")
    choice = choices[0]
    if "message" in choice:
        message = choice["message"]
        if not isinstance(message, dict):
            raise Invalid("the response's message is not an object")
        if message.get("tool_calls"):
            raise Invalid("the response calls tools")
        content = _text(message.get("content"), "the response")
    else:
        content = _text(choice.get("text"), "the response")
    if not content.strip():
        raise Invalid("an empty response")
    return {"role": "assistant", "content": content}


def _text(content, what: str) -> str:
    """Content that is text: a string, or a list of text parts (joined by lines)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "\n".join(part["text"] for part in content)
    raise Invalid(f"{what} has content other than text")


def icl_record(curated: Curated) -> dict:
    """One in-context example: the conversation, the answer, and why it was chosen."""
    result, annotation = curated.result, curated.annotation
    return {
        "messages": [*chat_messages(result), assistant_message(result)],
        "meta": {
            "custom_id": result.custom_id,
            "batch_id": result.batch.public_id,
            "model": result.batch.model,
            "quality_score": annotation.quality if annotation else None,
            "category": annotation.category or None if annotation else None,
            "tags": curated.tags,
            "notes": annotation.notes if annotation else "",
            "starred_by": [reviewer for reviewer, _ in curated.stars],
            "starred_at": curated.stars[0][1].isoformat() if curated.stars else None,
        },
    }


def finetuning_record(result: Request) -> dict:
    """Exactly {"messages": [...]}: OpenAI's chat fine-tuning format, which
    `datasets` loads and TRL's SFT trainer takes as a conversational dataset."""
    return {"messages": [*chat_messages(result), assistant_message(result)]}


def preference_record(preference: Preference) -> dict:
    """OpenAI's DPO format: the shared input, the preferred and the other answer."""
    chosen, rejected = preference.chosen, preference.rejected
    return {
        "input": {"messages": chat_messages(chosen)},
        "preferred_output": [assistant_message(chosen)],
        "non_preferred_output": [assistant_message(rejected)],
    }


def batch_input_record(result: Request, *, model: str, endpoint: str) -> dict:
    """The original request, addressed to another model: a Batch API input line."""
    if not isinstance(result.body, dict):
        raise Invalid("the body is not an object")
    body = {**result.body, "model": model}
    return {"custom_id": result.custom_id, "method": "POST", "url": endpoint, "body": body}
