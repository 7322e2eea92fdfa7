"""The shape of each export format, one record at a time.

Every function turns a result (or a preference) into one record or raises
Invalid with the reason; an invalid row is reported in the manifest and never
written, so every file loads in the tool that consumes it without edits.
"""

from dataclasses import dataclass
from datetime import datetime

from batches.models import Request, message_text
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
    fine-tuning accepts: `developer` becomes `system`, content becomes text."""
    messages = []
    for message in result.messages:
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in FINETUNING_ROLES:
            raise Invalid(f"message role {role!r} is not system, user or assistant")
        content = message_text(message.get("content"))
        if not content.strip():
            raise Invalid(f"an empty {role} message")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise Invalid("no user message")
    return messages


def assistant_message(result: Request) -> dict:
    if result.status != Request.Status.COMPLETED or result.status_code != 200:
        raise Invalid(f"the request did not complete ({result.status})")
    content = result.response_text
    if not content.strip():
        raise Invalid("an empty response")
    return {"role": "assistant", "content": content}


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
    body = {**result.body, "model": model}
    return {"custom_id": result.custom_id, "method": "POST", "url": endpoint, "body": body}
