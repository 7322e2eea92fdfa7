"""The demo's data: synthetic candidate profiles screened against one job by a recruiter rubric.

`manage.py demo` submits these lines twice (greedy and sampled) so that a new
server has real evaluations to show in the viewer. Everything here is plain
Python and deterministic for a seed: the same seed gives the same file, so two
runs, or two machines, can be compared line by line.
"""

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

ENDPOINT: Final = "/v1/chat/completions"
# An answer takes 35-55 tokens on SmolLM2-135M (measured, 400 screenings); the
# cap leaves room for three long reasons and stops a model that rambles.
MAX_TOKENS = 200

COMPANY = "Talentbridge"
JOB_TITLE = "Senior Backend Engineer"
JOB_DESCRIPTION = f"""\
{JOB_TITLE} at {COMPANY}, a recruiting platform that matches 40,000 candidates a month \
to hiring teams.
Must have: 5+ years building backend services; Python (Django or FastAPI); PostgreSQL; \
designing and versioning REST APIs; background jobs and queues.
Nice to have: search (Elasticsearch or OpenSearch), AWS or GCP, mentoring engineers, \
experience with hiring or HR products.
Remote within Europe, or hybrid in Berlin."""

VERDICTS = ("strong_yes", "yes", "maybe", "no")
REASONS = (1, 3)  # how many
REASON_LENGTH = (10, 120)  # characters
FIELDS = ("reasons", "score", "verdict")

RUBRIC = f"""\
You are a senior technical recruiter screening candidates for this role:

{JOB_DESCRIPTION}

First give one to three short reasons that cite the candidate's profile: must-haves they \
have or lack, relevant years, nice-to-haves. Then score the candidate from 0 to 100 against \
the role, and give the verdict: strong_yes (85-100), yes (70-84), maybe (50-69) or \
no (below 50). Answer with JSON only, for example:
{{"reasons": ["8 years of Django and PostgreSQL", "No search experience"], "score": 74, \
"verdict": "yes"}}"""

# The recruiter's rubric as OpenAI's strict structured output: every property
# required and nothing else allowed. The reasons come first, so the score is
# written after them; they are bounded in number and length so that a small
# model that repeats itself still ends inside MAX_TOKENS, and a minimum length
# keeps it from answering "1", "2", "3" (SmolLM2-135M did, greedily).
EVALUATION_SCHEMA = {
    "type": "object",
    "properties": {
        "reasons": {
            "type": "array",
            "items": {
                "type": "string",
                "minLength": REASON_LENGTH[0],
                "maxLength": REASON_LENGTH[1],
            },
            "minItems": REASONS[0],
            "maxItems": REASONS[1],
        },
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "verdict": {"type": "string", "enum": list(VERDICTS)},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "evaluation", "strict": True, "schema": EVALUATION_SCHEMA},
}


@dataclass(frozen=True)
class Sampling:
    """One side of the comparison: a label for the batch and the body's sampling fields."""

    label: str
    params: dict

    def describe(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in self.params.items())


def samplings(seed: int) -> tuple[Sampling, Sampling]:
    """Greedy decoding, and sampling that is reproducible through `seed`."""
    return (
        Sampling("greedy", {"temperature": 0.0}),
        Sampling("sampled", {"temperature": 1.0, "top_p": 0.9, "seed": seed}),
    )


@dataclass(frozen=True)
class Profile:
    custom_id: str
    name: str
    location: str
    title: str
    years: int
    skills: tuple[str, ...]
    roles: tuple[str, ...]
    education: str
    summary: str

    def text(self) -> str:
        """The profile as a recruiter reads it: the user message of its request."""
        return "\n".join(
            (
                f"Candidate: {self.name} ({self.location})",
                f"Current title: {self.title}",
                f"Years of experience: {self.years}",
                f"Skills: {', '.join(self.skills)}",
                "Past roles:",
                *(f"- {role}" for role in self.roles),
                f"Education: {self.education}",
                f"Summary: {self.summary}",
            )
        )


# fmt: off
FIRST_NAMES = (
    "Aisha", "Ben", "Camila", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ibrahim", "Julia",
    "Kenji", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tomasz",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zofia", "Amara", "Bogdan", "Chloe", "Diego",
    "Emeka", "Freya", "Giulia", "Hiroshi", "Ines", "Jonas", "Kavya", "Luca", "Maja", "Noor",
)
LAST_NAMES = (
    "Okafor", "Schmidt", "Rossi", "Nakamura", "Kowalski", "Haddad", "Fernandes", "Lindqvist",
    "Yilmaz", "Dubois", "Novak", "Mensah", "Papadopoulos", "Ivanova", "Sato", "Jansen",
    "Moreau", "Kaur", "Andersen", "Costa", "Nguyen", "Petrov", "Weber", "Ali",
)
LOCATIONS = (
    "Berlin, Germany", "Lisbon, Portugal", "Warsaw, Poland", "Amsterdam, Netherlands",
    "Madrid, Spain", "Stockholm, Sweden", "Prague, Czechia", "Dublin, Ireland",
    "Toronto, Canada", "Austin, USA", "Lagos, Nigeria", "Bangalore, India",
)
COMPANIES = (
    "Hirewise", "Northwind Logistics", "Paylane", "Cobalt Health", "Fjord Analytics",
    "Brightdesk", "Quanta Retail", "Mosaic Travel", "Ledgerly", "Orbit Media", "Staffly",
    "Greenfield Energy", "Kiteworks Games", "Tessellate", "Uplink Telecom",
)
UNIVERSITIES = (
    "TU Munich", "University of Lisbon", "Warsaw University of Technology", "KTH Stockholm",
    "University College Dublin", "Delft University of Technology", "University of Toronto",
    "IIT Bombay", "University of Lagos", "Charles University",
)

CORE_SKILLS = ("Python", "Django", "PostgreSQL", "REST APIs", "Celery", "FastAPI")
NICE_SKILLS = ("Elasticsearch", "AWS", "GCP", "Redis", "Kafka", "Docker", "Kubernetes")
OTHER_BACKEND_SKILLS = ("Java", "Spring Boot", "Go", "Node.js", "MySQL", "MongoDB", "gRPC")
UNRELATED_SKILLS = (
    "React", "Figma", "Excel", "Salesforce", "SEO", "Photoshop", "Tableau", "Swift",
    "Unity", "Copywriting",
)
# fmt: on
EDUCATION = (
    "BSc Computer Science",
    "MSc Computer Science",
    "BEng Software Engineering",
    "MSc Data Science",
    "BSc Mathematics",
    "BA Economics",
    "Coding bootcamp (12 weeks)",
    "BA Graphic Design",
)


@dataclass(frozen=True)
class _Fit:
    """How a kind of candidate is drawn; the tiers make some strong fits and some weak."""

    titles: tuple[str, ...]
    years: tuple[int, int]
    core: tuple[int, int]  # how many of CORE_SKILLS
    nice: tuple[int, int]
    other: tuple[int, int]
    unrelated: tuple[int, int]
    education: tuple[str, ...]
    summaries: tuple[str, ...]


FITS = (
    _Fit(
        titles=("Senior Backend Engineer", "Staff Software Engineer", "Backend Tech Lead"),
        years=(7, 15),
        core=(4, 6),
        nice=(2, 4),
        other=(0, 1),
        unrelated=(0, 0),
        education=EDUCATION[:5],
        summaries=(
            "Led the Django monolith to services split at {company}; mentors four engineers.",
            "Built a candidate search on Elasticsearch serving 2M profiles at {company}.",
            "Owns the billing API at {company}; cut p99 latency from 900 ms to 120 ms.",
            "Designed the job queue that runs 5M background tasks a day at {company}.",
        ),
    ),
    _Fit(
        titles=("Backend Engineer", "Software Engineer", "Python Developer"),
        years=(4, 8),
        core=(3, 5),
        nice=(1, 2),
        other=(0, 2),
        unrelated=(0, 1),
        education=EDUCATION[:6],
        summaries=(
            "Ships Django features end to end at {company}; on call for the payments API.",
            "Moved reporting jobs at {company} from cron to Celery; wants a senior role.",
            "Maintains PostgreSQL schemas and REST endpoints for the mobile app at {company}.",
        ),
    ),
    _Fit(
        titles=("Full-Stack Developer", "Java Developer", "Data Engineer", "Backend Developer"),
        years=(2, 6),
        core=(1, 2),
        nice=(0, 2),
        other=(2, 4),
        unrelated=(0, 2),
        education=EDUCATION,
        summaries=(
            "Mostly Spring Boot services at {company}; has used Python for scripts.",
            "Splits time between React screens and Node.js APIs at {company}.",
            "Builds data pipelines in Airflow at {company}; curious about product work.",
        ),
    ),
    _Fit(
        titles=("Junior Developer", "QA Analyst", "Product Designer", "Marketing Analyst"),
        years=(0, 3),
        core=(0, 1),
        nice=(0, 1),
        other=(0, 1),
        unrelated=(2, 4),
        education=EDUCATION[5:],
        summaries=(
            "Recent bootcamp graduate; built a to-do app in Flask.",
            "Designs onboarding flows in Figma at {company}; wants to learn backend.",
            "Runs SEO campaigns at {company} and automates reports in Excel.",
        ),
    ),
)
# Share of each tier: some strong fits, most in between, some clearly weak.
FIT_WEIGHTS = (0.2, 0.3, 0.3, 0.2)


def profiles(size: int, seed: int) -> list[Profile]:
    """`size` candidate profiles, the same for the same seed, with custom_ids
    `candidate-00001`… in order."""
    rng = random.Random(seed)
    width = max(5, len(str(size)))
    return [_profile(rng, f"candidate-{i:0{width}d}") for i in range(1, size + 1)]


def _profile(rng: random.Random, custom_id: str) -> Profile:
    fit = rng.choices(FITS, weights=FIT_WEIGHTS)[0]
    years = rng.randint(*fit.years)
    skills = [
        *rng.sample(CORE_SKILLS, rng.randint(*fit.core)),
        *rng.sample(NICE_SKILLS, rng.randint(*fit.nice)),
        *rng.sample(OTHER_BACKEND_SKILLS, rng.randint(*fit.other)),
        *rng.sample(UNRELATED_SKILLS, rng.randint(*fit.unrelated)),
    ]
    rng.shuffle(skills)
    title = rng.choice(fit.titles)
    companies = rng.sample(COMPANIES, 3)
    roles = _roles(rng, title=title, years=years, companies=companies)
    degree = rng.choice(fit.education)
    education = degree if "bootcamp" in degree else f"{degree}, {rng.choice(UNIVERSITIES)}"
    return Profile(
        custom_id=custom_id,
        name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        location=rng.choice(LOCATIONS),
        title=title,
        years=years,
        skills=tuple(skills),
        roles=roles,
        education=education,
        summary=rng.choice(fit.summaries).format(company=companies[0]),
    )


def _roles(rng: random.Random, *, title: str, years: int, companies: list[str]) -> tuple[str, ...]:
    """Up to three past roles, newest first, whose years add up to `years`."""
    if years == 0:
        return (f"{title} (intern), {companies[0]}, 6 months",)
    count = min(len(companies), max(1, years // 3))
    cuts = sorted(rng.sample(range(1, years), count - 1)) if count > 1 else []
    spans = [b - a for a, b in zip([0, *cuts], [*cuts, years], strict=True)]
    earlier = ("Software Engineer", "Developer", "Intern", "Analyst")
    return tuple(
        f"{title if i == 0 else rng.choice(earlier)}, {company}, "
        f"{span} year{'s' if span != 1 else ''}"
        for i, (company, span) in enumerate(zip(companies, spans, strict=False))
    )


def request_line(profile: Profile, *, model: str, sampling: Sampling) -> dict:
    """One Batch API input line: the rubric as the system prompt, the profile as the user's."""
    return {
        "custom_id": profile.custom_id,
        "method": "POST",
        "url": ENDPOINT,
        "body": {
            "model": model,
            "messages": [
                {"role": "system", "content": RUBRIC},
                {"role": "user", "content": profile.text()},
            ],
            "response_format": RESPONSE_FORMAT,
            "max_tokens": MAX_TOKENS,
            **sampling.params,
        },
    }


def input_lines(people: list[Profile], *, model: str, sampling: Sampling) -> Iterator[bytes]:
    """The batch input file, one JSONL line at a time."""
    for profile in people:
        line = request_line(profile, model=model, sampling=sampling)
        yield json.dumps(line, ensure_ascii=False).encode() + b"\n"


def evaluation(text: str) -> dict | None:
    """The rubric's answer in a response's text, or None when it is not one
    (EVALUATION_SCHEMA's rules, for the summary; the engine enforces the schema itself)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != set(FIELDS):
        return None
    score, verdict, reasons = value["score"], value["verdict"], value["reasons"]
    if (
        isinstance(score, int)
        and not isinstance(score, bool)
        and 0 <= score <= 100
        and verdict in VERDICTS
        and isinstance(reasons, list)
        and REASONS[0] <= len(reasons) <= REASONS[1]
        and all(
            isinstance(reason, str) and REASON_LENGTH[0] <= len(reason) <= REASON_LENGTH[1]
            for reason in reasons
        )
    ):
        return value
    return None


@dataclass
class Tally:
    """What a batch's output file says about the candidates, in one line."""

    answers: int = 0
    scores: list[int] = field(default_factory=list)
    verdicts: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        if not self.scores:
            return f"{self.answers:,} answers, none in the rubric's JSON"
        verdicts = ", ".join(f"{v} {self.verdicts[v]}" for v in VERDICTS if self.verdicts[v])
        mean = sum(self.scores) / len(self.scores)
        return (
            f"{len(self.scores):,} of {self.answers:,} answers fit the rubric "
            f"({verdicts}; mean score {mean:.0f})"
        )


def tally(output_lines: Iterable[str | bytes]) -> Tally:
    """Count the rubric's answers in an output file (OpenAI's batch output lines)."""
    counted = Tally()
    for raw in output_lines:
        if not raw.strip():
            continue
        counted.answers += 1
        try:
            content = json.loads(raw)["response"]["body"]["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            continue
        if isinstance(content, str) and (answer := evaluation(content)):
            counted.scores.append(answer["score"])
            counted.verdicts[answer["verdict"]] += 1
    return counted
