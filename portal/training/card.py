"""The model card: what a model is for, what it was trained on, how well it does, where it fails."""

from __future__ import annotations

from typing import Any

from portal.training.comparison import METRIC_LABELS, MIN_NORMALS_FOR_STRICT_FPR, signed


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}%" if value < 0.01 else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _feedback_section(manifest: dict[str, Any]) -> str:
    feedback = manifest.get("feedback")
    if not feedback:
        return "No moderator feedback was used: this model is trained on the research data only.\n"
    organisations = feedback.get("organisations", 0)
    lines = [
        (
            f"This model was retrained with {feedback['records']:,} moderator verdicts received as "
            f"feedback ({feedback.get('grooming', 0):,} grooming, "
            f"{feedback.get('imminent_threat', 0):,} imminent threat, "
            f"{feedback.get('not_grooming', 0):,} not grooming) from {organisations:,} "
            f"organisation{'' if organisations == 1 else 's'}, each weighted "
            f"{feedback.get('weight', 1.0):g} in training. Feedback trains the model but is never "
            "measured: the figures above are the research data's."
        ),
    ]
    bundles = feedback.get("bundles") or {}
    if bundles:
        lines.append(
            "Verdicts by the bundle that scored them: "
            + ", ".join(f"{name}: {count:,}" for name, count in bundles.items())
            + "."
        )
    skipped = feedback.get("skipped", 0)
    if skipped:
        reasons = feedback.get("skipped_reasons") or {}
        detail = "; ".join(f"{count:,} with {why}" for why, count in reasons.items())
        lines.append(
            f"{skipped:,} feedback {'record was' if skipped == 1 else 'records were'} skipped"
            + (f" ({detail})" if detail else "")
            + ": their vectors are not in this model's feature space."
        )
    else:
        lines.append("No feedback record was skipped.")
    if feedback.get("digest"):
        lines.append(f"Feedback digest: `{feedback['digest']}`.")
    base = manifest.get("base")
    if base:
        lines.append(
            f"Retrained from {base.get('name')} {base.get('version') or '(unpublished)'} "
            f"(model `{base.get('model_sha256')}`), on the same training data."
        )
    return "\n\n".join(lines) + "\n" + _comparison_section(manifest)


def _comparison_section(manifest: dict[str, Any]) -> str:
    comparisons = manifest.get("comparison") or []
    if not comparisons:
        return ""
    blocks = ["\n## Compared with the base model\n"]
    for comparison in comparisons:
        rows = "\n".join(
            f"| {METRIC_LABELS.get(name, name)} | {_num(m.get('base'))} | "
            f"{_num(m.get('candidate'))} | "
            f"{signed(m.get('delta'))} |"
            for name, m in comparison["metrics"].items()
        )
        ungated = [
            METRIC_LABELS.get(name, name)
            for name, m in comparison["metrics"].items()
            if not m.get("gated", True)
        ]
        listed = ", ".join(ungated)
        note = (
            f"\n{listed[:1].upper()}{listed[1:]}: shown, not judged by the promotion gate "
            f"(fewer than {MIN_NORMALS_FOR_STRICT_FPR:,} normal conversations).\n"
            if ungated
            else ""
        )
        blocks.append(
            f"{comparison['scheme'].capitalize()}: {comparison['description']}.\n\n"
            f"| metric | {comparison['base']} | this model | change |\n"
            f"|---|---:|---:|---:|\n{rows}\n{note}"
        )
    return "\n".join(blocks)


def render_model_card(manifest: dict[str, Any], metrics: dict[str, Any]) -> str:
    cv = metrics["cross_validation"]
    loso = metrics.get("leave_one_source_out", {})
    threshold = manifest["recommended_threshold"]
    data_rows = "\n".join(
        f"| {source} | {counts.get('grooming', 0):,} | {counts.get('normal', 0):,} |"
        for source, counts in manifest["training_data"].items()
    )
    source_rows = "\n".join(
        f"| {name} | {_pct(row.get('flag_rate'))} | {_pct(loso.get(name, {}).get('flag_rate'))} |"
        for name, row in cv["per_source"].items()
        if row.get("n_normal")
    )
    feedback_section = _feedback_section(manifest)
    title = f"{manifest.get('name', 'vigil')} {manifest.get('version') or '(unpublished)'}"
    return f"""# Model card: {title}

## Intended use
Vigil rates historical text chat between users of a platform for signs of child grooming
and gives each conversation a calibrated probability, ten named characteristics and the
messages that show them. It is for **trust & safety teams of vetted organisations**, to decide
which conversations a trained human moderator should read first. It is not a decision
about any person: every flag is reviewed by a moderator, who decides whether to escalate
(imminent threats to law enforcement, suspected exploitation to NCMEC).

Do not use it to take automatic action against users, to score people rather than
conversations, or on languages other than English.

## Training data
| source | grooming conversations | normal conversations |
|---|---:|---:|
{data_rows}

- Grooming: Perverted-Justice transcripts of adults talking with **adult decoys posing as
  children**, cut into windows of consecutive messages as long as ordinary conversations.
  Real victims write differently from decoys; recall on real grooming may be lower.
- Normal: public chit-chat, everyday dialogue, persona chat, topical chat, self-dialogue and
  Ubuntu IRC threads. None is a teen chat platform: the flag rate on a new platform's chat
  must be measured there (`vigil-engine evaluate`) before a threshold is trusted.
- English only. Training data digest: `{manifest["training_data_digest"]}`.
- The model holds hashed word and word-pair weights and no vocabulary: no message text is
  stored in it. Weights exist only for terms used in at least
  {manifest["training"]["min_positive_groups"]} different grooming cases.

## How it works
Messages are normalised (case, punctuation, chat spellings such as "u"/"ur", laughter and
fillers erased) so the model learns what is said rather than how a chat source writes;
unigrams and bigrams are hashed; a calibrated logistic regression weighs them with the ten
characteristics of grooming research (personal information, trust building, isolation,
secrecy, exclusivity, sexual content, meeting arrangement, platform migration, gifts and
favours, age-disclosure gap) and the conversation's structure (number of participants).
The running score after each message gives `first_flag_message`, the early warning.

## Operating point
Recommended threshold: **{threshold}**: the lowest at which no normal source was flagged above
{_pct(manifest["training"]["max_source_flag_rate"])} in cross-validation and no source left out
of training above {_pct(manifest["training"].get("max_unseen_source_flag_rate"))}. Prevalence in
training: {_pct(manifest["prevalence"])}; probabilities are calibrated at that prevalence. On a
platform where grooming is rarer, the same score means a lower chance of grooming: set the
threshold from your own moderators' precision.

## Cross-validated performance
{cv["scheme"]}; {cv["n"]:,} conversations, {cv["n_positive"]:,} grooming.

| metric | value |
|---|---:|
| PR-AUC | {_num(cv["pr_auc"])} |
| ROC-AUC | {_num(cv["roc_auc"], 4)} |
| recall at 1% false-positive rate | {_num(cv["recall_at_fpr"]["0.01"])} |
| recall at 0.1% false-positive rate | {_num(cv["recall_at_fpr"]["0.001"])} |
| precision at the threshold | {_num(cv["precision"])} |
| recall at the threshold | {_num(cv["recall"])} |
| F1 / F0.5 at the threshold | {_num(cv["f1"])} / {_num(cv["f0_5"])} |
| false-positive rate at the threshold | {_pct(cv["false_positive_rate"])} |
| expected calibration error (10 bins) | {_num(cv["ece"])} |

### Normal sources
Flag rate at the threshold in cross-validation, and when the source is left out of training
entirely (a model that never saw this style of chat; its threshold flags the same share of
the normal conversations it did see):

| source | flag rate (cross-validated) | flag rate (source never seen) |
|---|---:|---:|
{source_rows}

## Limits
- Decoys are adults pretending to be children; offenders in these transcripts were mostly
  caught, so the data over-represents bold, fast grooming.
- A window of a grooming conversation can be harmless small talk: the earliest messages of
  grooming look like any chat, and a model that flagged them would flag everyone.
- Chat styles absent from training (the "source never seen" column) are flagged more often:
  evaluate on your own chat before choosing a threshold.
- English only; sarcasm, role-play between adults and consensual adult sexual talk are
  not distinguished from grooming unless an age gap is stated.

## Feedback
{feedback_section}"""
