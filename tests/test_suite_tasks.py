"""Suite tasks: each release format read from a fixture written in that format, each template,
the pairing rule (correct answer + one seeded distractor, grouped, balanced), truncation from the
passage, and answer-only classifiers on the real releases in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tests.tiny_lms import word_tokenizer
from weaklift.config import SplitConfig, TaskConfig
from weaklift.errors import WeakliftError
from weaklift.splits import make_splits
from weaklift.tasks import TASKS, load_task
from weaklift.tasks.suite import SUITE_TASKS

DATA = Path(os.environ.get("WEAKLIFT_DATA", Path(__file__).parents[2] / "shared" / "data"))


def _put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _load(name: str, path: Path, **kw):
    return load_task(TaskConfig(name=name, path=str(path), **kw))


def _pairs_ok(data) -> None:
    """Two statements a question: one true, one false, one group; exactly balanced."""
    assert data.labels.mean() == 0.5
    for group in np.unique(data.groups):
        assert sorted(data.labels[data.groups == group].tolist()) == [0, 1]
    assert data.extra["truncation_side"] == "left"
    assert len(data.extra["answer"]) == len(data.texts)


# ---------------------------------------------------------------- multiple-choice releases


def test_dream_release_and_template(tmp_path):
    dialogue = [["M: Where to?", "W: The station, please."], [
        {"question": "Where is the woman going?", "choice": ["Home.", "The station.", "Work."],
         "answer": "The station."}], "1-1"]  # fmt: skip
    _put(tmp_path / "data" / "dev.json", json.dumps([dialogue]))
    _put(tmp_path / "data" / "train.json", json.dumps([dialogue]))
    data = _load("dream", tmp_path)
    _pairs_ok(data)
    assert len(data.texts) == 4  # both splits pooled, two statements each
    assert data.texts[0] == (
        "M: Where to?\nW: The station, please.\nQuestion: Where is the woman going?\n"
        "Answer: The station."
    )
    assert data.texts[1].rsplit("Answer: ", 1)[1] in ("Home.", "Work.")
    assert _load("dream", tmp_path / "data").texts == data.texts  # flat folder: the same


def test_openbookqa_jsonl_and_tsv(tmp_path):
    row = {"id": "7-1", "question": {"stem": "Gas fills", "choices": [
        {"label": "A", "text": "a box"}, {"label": "B", "text": "any container"}]},
        "answerKey": "B"}  # fmt: skip
    _put(tmp_path / "Data" / "Main" / "train.jsonl", _jsonl([row]))
    _put(tmp_path / "Data" / "Additional" / "train_complete.jsonl", _jsonl([row, row]))
    tsv = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
    tsv += "8-3\tSharks live\t(A) deep (B) in trees (C) in space\tSharks live ...\tA\n"
    _put(tmp_path / "Data" / "Main" / "dev.tsv", tsv)
    _put(tmp_path / "Data" / "Main" / "train.tsv", tsv)  # train has JSONL: its TSV is not read
    data = _load("openbookqa", tmp_path)
    _pairs_ok(data)
    assert len(data.texts) == 4
    assert data.texts[0] == "Question: Gas fills\nAnswer: any container"
    assert data.texts[2] == "Question: Sharks live\nAnswer: deep"


def test_commonsense_qa_skips_the_unanswered_test_file(tmp_path):
    choices = [{"label": k, "text": t} for k, t in zip("ABCDE", "abcde", strict=True)]
    row = {"id": "q1", "answerKey": "C", "question": {"stem": "Pick c", "choices": choices}}
    _put(tmp_path / "train_rand_split.jsonl", _jsonl([row]))
    _put(tmp_path / "test_rand_split_no_answers.jsonl", _jsonl([{**row, "answerKey": ""}]))
    data = _load("commonsense_qa", tmp_path)
    _pairs_ok(data)
    assert data.texts[0] == "Question: Pick c\nAnswer: c" and len(data.texts) == 2


def test_piqa_pools_labelled_splits_only(tmp_path):
    rows = [{"goal": f"goal {i}", "sol1": f"first {i}", "sol2": f"second {i}"} for i in range(4)]
    _put(tmp_path / "valid.jsonl", _jsonl(rows))
    _put(tmp_path / "valid-labels.lst", "0\n1\n1\n0\n")
    _put(tmp_path / "tests.jsonl", _jsonl(rows))  # no labels: left out
    data = _load("piqa", tmp_path)
    _pairs_ok(data)
    assert len(data.texts) == 8
    assert data.texts[0] == "Goal: goal 0\nSolution: first 0"
    assert data.texts[2] == "Goal: goal 1\nSolution: second 1"
    _put(tmp_path / "valid-labels.lst", "0\n1\n")
    with pytest.raises(WeakliftError, match="4 rows but .* 2 labels"):
        _load("piqa", tmp_path)


def test_social_iqa_one_based_labels(tmp_path):
    row = {"context": "Ash smiled.", "question": "How does Ash feel?", "answerA": "sad",
           "answerB": "happy", "answerC": "angry"}  # fmt: skip
    _put(tmp_path / "dev.jsonl", _jsonl([row]))
    _put(tmp_path / "dev-labels.lst", "2\n")
    data = _load("social_iqa", tmp_path)
    _pairs_ok(data)
    assert data.texts[0] == "Ash smiled.\nQuestion: How does Ash feel?\nAnswer: happy"


QUAIL_XML = """<data>
 <text domain="fiction" id="f1">
  <text_body>
   Ann ran home.
  </text_body>
  <questions>
   <q id="1" type="Factual">
    Where did Ann run?
    <a id="1" correct="False">
     school
    </a>
    <a id="2" correct="True">
     home
    </a>
    <a id="3">
     not enough information
    </a>
   </q>
  </questions>
 </text>
</data>
"""


def test_quail_jsonl_and_ordered_xml_never_randomized(tmp_path):
    row = {"id": "f9_0", "context": "Bo slept.", "question": "Who slept?",
           "answers": ["Bo", "Al", "Cy", "not enough information"], "correct_answer_id": "0"}  # fmt: skip
    _put(tmp_path / "json" / "challenge.jsonl", _jsonl([row]))
    _put(tmp_path / "xml" / "ordered" / "quail_1.3_dev.xml", QUAIL_XML)
    _put(tmp_path / "xml" / "randomized" / "quail_1.3_dev_randomized.xml", QUAIL_XML)
    data = _load("quail", tmp_path)
    _pairs_ok(data)
    assert len(data.texts) == 4  # challenge (JSONL) + dev (ordered XML); randomized ignored
    assert data.texts[0] == "Bo slept.\nQuestion: Who slept?\nAnswer: Bo"
    assert data.texts[2] == "Ann ran home.\nQuestion: Where did Ann run?\nAnswer: home"
    _put(tmp_path / "json" / "dev.jsonl", _jsonl([row]))  # dev now has JSONL: its XML is skipped
    assert len(_load("quail", tmp_path).texts) == 4


def test_mc_taco_one_plausible_and_one_implausible_candidate(tmp_path):
    lines = [
        "He left.\tWhen did he leave?\tat noon\tyes\tEvent Ordering",
        "He left.\tWhen did he leave?\tat 3 pm\tyes\tEvent Ordering",
        "He left.\tWhen did he leave?\tlast century\tno\tEvent Ordering",
        "She ate.\tHow long?\t10 minutes\tyes\tEvent Duration",  # no implausible: skipped
    ]
    _put(tmp_path / "dev_3783.tsv", "\n".join(lines) + "\n")
    data = _load("mc_taco", tmp_path)
    _pairs_ok(data)
    assert data.extra["skipped_questions"] == 1 and len(data.texts) == 2
    assert data.texts[0].startswith("He left.\nQuestion: When did he leave?\nAnswer: at ")
    assert data.texts[1].endswith("Answer: last century")


def test_multirc_passage_markup_and_unlabelled_test(tmp_path):
    passage = {"text": "<b>Sent 1: </b>Sam cooks.<br><b>Sent 2: </b>Kim eats.<br>",
               "questions": [{"idx": 0, "question": "Who cooks?", "answers": [
                   {"idx": 0, "text": "Sam", "label": 1}, {"idx": 1, "text": "Kim", "label": 0},
                   {"idx": 2, "text": "Sam does", "label": 1}]}]}  # fmt: skip
    _put(tmp_path / "MultiRC" / "train.jsonl", _jsonl([{"idx": 0, "passage": passage}]))
    unlabelled = json.loads(json.dumps(passage))
    for answer in unlabelled["questions"][0]["answers"]:
        del answer["label"]
    _put(tmp_path / "MultiRC" / "test.jsonl", _jsonl([{"idx": 0, "passage": unlabelled}]))
    data = _load("multirc", tmp_path)
    _pairs_ok(data)
    assert (
        data.texts[1] == "Sent 1: Sam cooks.\nSent 2: Kim eats.\nQuestion: Who cooks?\nAnswer: Kim"
    )
    assert data.extra["answer"][0] in ("Sam", "Sam does")


def test_cosmos_qa_and_boolq_read_their_release_files(tmp_path):
    row = {"question": "is it?", "passage": "It is.", "idx": 0, "label": True}
    _put(tmp_path / "val.jsonl", _jsonl([row, {**row, "idx": 1, "label": False}]))
    _put(tmp_path / "test.jsonl", _jsonl([{"question": "q", "passage": "p", "idx": 2}]))
    data = _load("boolq", tmp_path)
    assert data.texts == ["Passage: It is.\nQuestion: is it?"] * 2 and data.labels.tolist() == [
        1,
        0,
    ]
    assert data.extra["truncation_side"] == "left" and data.extra["skipped_unlabelled"] == 1


def test_max_examples_keeps_whole_questions(tmp_path):
    dream = [[["M: hi"], [{"question": f"q{i}", "choice": ["x", "y"], "answer": "x"}], f"d{i}"]
             for i in range(30)]  # fmt: skip
    _put(tmp_path / "train.json", json.dumps(dream))
    full = _load("dream", tmp_path, seed=2)
    small = _load("dream", tmp_path, seed=2, max_examples=11)
    _pairs_ok(small)
    assert len(small.texts) == 10 and set(small.texts) <= set(full.texts)
    assert small.texts == _load("dream", tmp_path, seed=2, max_examples=11).texts


def test_malformed_release_files_name_the_file(tmp_path):
    bad = [[["M: hi"], [{"question": "q", "choice": ["a", "b"], "answer": "c"}], "d1"]]
    path = _put(tmp_path / "dream" / "dev.json", json.dumps(bad))
    with pytest.raises(WeakliftError, match=f"could not read {path}.*not a choice"):
        _load("dream", tmp_path / "dream")
    _put(tmp_path / "taco" / "dev_3783.tsv", "s\tq\ta\tmaybe\tEvent Duration\n")
    with pytest.raises(WeakliftError, match="line 1 is not sentence, question, answer, yes/no"):
        _load("mc_taco", tmp_path / "taco")
    _put(tmp_path / "siqa" / "dev.jsonl", _jsonl([{"context": "c", "question": "q",
         "answerA": "a", "answerB": "b", "answerC": "c"}]))  # fmt: skip
    _put(tmp_path / "siqa" / "dev-labels.lst", "4\n")
    with pytest.raises(WeakliftError, match="label 4 is not 1, 2 or 3"):
        _load("social_iqa", tmp_path / "siqa")
    with pytest.raises(WeakliftError, match="no labelled release files"):
        _load("piqa", tmp_path / "taco")


def test_pair_is_seeded_by_question_not_by_neighbours(tmp_path):
    dream = [[["M: hi"], [{"question": f"q{i}", "choice": ["x", "y", "z", "w"], "answer": "x"}],
              f"d{i}"] for i in range(40)]  # fmt: skip
    _put(tmp_path / "d" / "train.json", json.dumps(dream))
    _put(tmp_path / "alone" / "train.json", json.dumps(dream[5:6]))
    both, alone = _load("dream", tmp_path / "d", seed=3), _load("dream", tmp_path / "alone", seed=3)
    assert alone.texts == both.texts[10:12]
    other = _load("dream", tmp_path / "d", seed=4)
    assert other.texts[0::2] == both.texts[0::2] and other.texts[1::2] != both.texts[1::2]
    assert {t[-1] for t in both.texts[1::2]} == {"y", "z", "w"}  # every wrong answer drawn


# ---------------------------------------------------------------- single texts and pairs


def test_cola_reads_raw_not_tokenized(tmp_path):
    raw = "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n"
    _put(tmp_path / "cola_public" / "raw" / "in_domain_train.tsv", raw)
    _put(tmp_path / "cola_public" / "tokenized" / "in_domain_train.tsv", raw)
    data = _load("cola", tmp_path)
    assert data.texts == ["The cat sat.", "Cat the sat."] and data.labels.tolist() == [1, 0]
    assert data.label_names == ["unacceptable", "acceptable"]
    with pytest.raises(WeakliftError, match="line 1"):
        _put(tmp_path / "bad" / "x.tsv", "only\ttwo\n")
        _load("cola", tmp_path / "bad")


def test_wic_nested_or_flat_skips_split_without_gold(tmp_path):
    line = "bank\tN\t1-2\tHe sat by the bank.\tThe bank lent money.\n"
    for root in (tmp_path / "nested" / "train", tmp_path / "flat"):
        _put(root / "train.data.txt", line * 2)
        _put(root / "train.gold.txt", "F\nT\n")
        _put(root / "test.data.txt", line)  # no gold: skipped
    for path in (tmp_path / "nested", tmp_path / "flat"):
        data = _load("wic", path)
        assert data.labels.tolist() == [0, 1]
        assert data.texts[0] == (
            "Sentence 1: He sat by the bank.\nSentence 2: The bank lent money.\n"
            "Does 'bank' mean the same in both sentences?"
        )


def test_tweeteval_binary_by_default_all_classes_on_request(tmp_path):
    root = tmp_path / "datasets" / "sentiment"
    _put(root / "mapping.txt", "0\tnegative\n1\tneutral\n2\tpositive\n")
    _put(root / "train_text.txt", "awful day\nit is tuesday\nlovely day\n")
    _put(root / "train_labels.txt", "0\n1\n2\n")
    _put(root / "test_text.txt", "no labels here\n")
    data = _load("tweeteval_sentiment", tmp_path)
    assert data.texts == ["awful day", "lovely day"] and data.labels.tolist() == [0, 1]
    assert data.label_names == ["negative", "positive"] and data.extra["skipped_neutral"] == 1
    full = _load("tweeteval_sentiment", root, classes="all")
    assert full.labels.tolist() == [0, 1, 2] and full.num_classes == 3
    with pytest.raises(WeakliftError, match="task.classes is only used by tweeteval_sentiment"):
        _load("cola", tmp_path, classes="all")
    _put(root / "mapping.txt", "0\tnegative\n1\tpositive\n")  # another subset's mapping
    with pytest.raises(WeakliftError, match="mapping.txt maps labels"):
        _load("tweeteval_sentiment", tmp_path)


def _ethics_root(tmp_path: Path) -> Path:
    root = tmp_path / "ethics"
    _put(
        root / "justice" / "justice_train.csv", "label,scenario\n1,I paid him because he worked.\n"
    )
    _put(
        root / "justice" / "justice_test_hard.csv",
        "label,scenario\n0,I deserve it because I am tall.\n",
    )
    _put(
        root / "deontology" / "deontology_train.csv",
        'label,scenario,excuse\n1,Can you cook?,"No, I am busy."\n0,Can you cook?,No, I am tall.\n'.replace(
            "No, I am tall.", '"No, I am tall."'
        ),
    )
    _put(
        root / "commonsense" / "cm_train.csv",
        "label,input,is_short,edited\n1,I kicked a dog.,True,False\n",
    )
    _put(root / "commonsense" / "cm_ambig.csv", "input\nI did a thing.\n")
    _put(
        root / "virtue" / "virtue_train.csv",
        "label,scenario\n1,Al gave away his coat. [SEP] generous\n0,Al gave away his coat. [SEP] mean\n",
    )
    return root


def test_ethics_subsets_from_root_or_subset_folder(tmp_path):
    root = _ethics_root(tmp_path)
    justice = _load("ethics_justice", root)
    # files in sorted name order: justice_test_hard, then justice_train
    assert justice.texts == ["I deserve it because I am tall.", "I paid him because he worked."]
    assert _load("ethics_justice", root / "justice").texts == justice.texts
    deontology = _load("ethics_deontology", root)
    assert deontology.texts[0] == "Request: Can you cook?\nExcuse: No, I am busy."
    assert deontology.groups[0] == deontology.groups[1]  # one request, one split
    commonsense = _load("ethics_commonsense", root)
    assert commonsense.texts == ["I kicked a dog."] * 1 and commonsense.label_names[1] == "wrong"
    virtue = _load("ethics_virtue", root / "virtue")
    assert virtue.texts == [
        "Scenario: Al gave away his coat.\nTrait: generous",
        "Scenario: Al gave away his coat.\nTrait: mean",
    ]
    assert virtue.labels.tolist() == [1, 0] and virtue.groups[0] == virtue.groups[1]
    with pytest.raises(WeakliftError, match="lacks column"):
        _put(tmp_path / "bad" / "justice_train.csv", "label,text\n1,x\n")
        _load("ethics_justice", tmp_path / "bad")


# ---------------------------------------------------------------- registry and truncation


def test_every_suite_task_is_registered_and_needs_a_path():
    for name in SUITE_TASKS:
        assert name in TASKS
    for name in ("dream", "cola", "wic", "tweeteval_sentiment", "ethics_virtue", "multirc"):
        with pytest.raises(WeakliftError, match="needs task.path"):
            load_task(TaskConfig(name=name))


def test_long_passage_is_truncated_from_its_start(tmp_path):
    passage = " ".join(f"w{i}" for i in range(200))
    row = {"context": passage, "question": "Which word is last?", "answerA": "w199",
           "answerB": "w0", "answerC": "w5"}  # fmt: skip
    _put(tmp_path / "dev.jsonl", _jsonl([row]))
    _put(tmp_path / "dev-labels.lst", "1\n")
    data = _load("social_iqa", tmp_path)
    tokenizer = word_tokenizer(data.texts)
    tokenizer.truncation_side = data.extra["truncation_side"]  # as stages/context.py sets it
    ids = tokenizer(data.texts, truncation=True, max_length=16)["input_ids"]  # as features.py
    assert len(ids[0]) == 16 and ids[0][0] == tokenizer.bos_token_id  # BOS survives the cut
    kept = tokenizer.decode(ids[0], skip_special_tokens=True)
    assert kept.endswith("question : which word is last ? answer : w199")
    assert "w0 " not in kept and "w198" in kept  # the passage's start is what went


# ---------------------------------------------------------------- answer-only, on the releases

# Answer-only accuracy on another split measured on the shared releases (task.seed 0): the pairing
# adds no signal (PIQA's two solutions, DREAM's choices: chance), but some releases' hand-written
# answers carry their own artifacts that any model of the full question can use too (OpenBookQA's
# correct answers are longer in 67% of questions, MC-TACO's plausible ones shorter in 61%; Social
# IQa and QuAIL reach 0.60-0.62). The bound records where each stands so a regression shows.
ANSWER_ONLY_BOUND = {
    "dream": 0.55,
    "piqa": 0.55,
    "quail": 0.65,
    "openbookqa": 0.67,
    "social_iqa": 0.65,
    "mc_taco": 0.72,
    "cosmos_qa": 0.65,
}


def _answer_only_accuracy(answers: np.ndarray, labels: np.ndarray, train, test) -> float:
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectorizer.fit(answers[train])
    model = LogisticRegression(max_iter=2000).fit(features.transform(answers[train]), labels[train])
    return float(model.score(features.transform(answers[test]), labels[test]))


@pytest.mark.parametrize("name", list(ANSWER_ONLY_BOUND))
def test_answer_only_classifier_on_the_release(name):
    if not (DATA / name).is_dir():
        pytest.skip(f"{DATA / name} not present (set WEAKLIFT_DATA)")
    data = _load(name, DATA / name)
    _pairs_ok(data)
    answers = np.asarray(data.extra["answer"], dtype=object)
    quarter = 2 * (len(data.texts) // 8)  # whole questions in every split
    sizes = SplitConfig(weak_train=quarter, transfer=quarter, val=quarter, test=quarter)
    splits = make_splits(data.labels, sizes, 0, groups=data.groups)
    train = np.concatenate([splits["weak_train"], splits["transfer"], splits["val"]])
    test = splits["test"]
    accuracy = _answer_only_accuracy(answers, data.labels, train, test)
    margin = 3 * math.sqrt(0.25 / len(test))
    print(f"{name}: answer-only accuracy {accuracy:.3f} on {len(test)} test statements")
    assert accuracy <= ANSWER_ONLY_BOUND[name] + margin, accuracy


@pytest.mark.parametrize(("name", "questions"), [("dream", 10_197), ("openbookqa", 5_957),
    ("piqa", 1_838), ("quail", 2_720), ("social_iqa", 35_364), ("mc_taco", 1_318)])  # fmt: skip
def test_release_loads_every_labelled_question(name, questions):
    if not (DATA / name).is_dir():
        pytest.skip(f"{DATA / name} not present (set WEAKLIFT_DATA)")
    data = _load(name, DATA / name)
    assert len(data.texts) == 2 * questions
    assert _load(name, DATA / name).fingerprint() == data.fingerprint()


def test_boolq_and_cosmos_qa_read_the_shared_release_copies():
    for name, statements in (("boolq", 3_270), ("cosmos_qa", 2 * 2_985)):
        if not (DATA / name).is_dir():
            pytest.skip(f"{DATA / name} not present (set WEAKLIFT_DATA)")
        data = _load(name, DATA / name)
        assert len(data.texts) == statements and data.extra["truncation_side"] == "left"


def test_suite_task_runs_end_to_end_with_its_pairs_kept_whole(tmp_path):
    """A PIQA-format fixture through the whole pipeline on tiny models: the two statements of a
    question always share a split."""
    from tests.tiny_models import make_tiny_model
    from weaklift.config_files import load_config
    from weaklift.pipeline import run_experiment
    from weaklift.store import Artifact, ArtifactStore

    words = ["cup", "pan", "cut", "pour", "heat", "wipe", "fold", "glue", "tape", "boil"]
    rng = np.random.default_rng(0)
    rows = [
        {"goal": f"{rng.choice(words)} {rng.choice(words)} {i}", "sol1": f"{rng.choice(words)} good",
         "sol2": f"{rng.choice(words)} bad"}
        for i in range(80)
    ]  # fmt: skip
    _put(tmp_path / "data" / "train.jsonl", _jsonl(rows))
    _put(tmp_path / "data" / "train-labels.lst", "".join(f"{i % 2}\n" for i in range(80)))
    vocab = [" ".join([*words, "good", "bad", "goal", "solution", ":"])]
    weak = make_tiny_model(tmp_path / "weak", arch="bert", texts=vocab)
    strong = make_tiny_model(tmp_path / "strong", arch="llama", texts=vocab)
    cfg = load_config(
        None,
        [
            "task.name=piqa",
            f"task.path={tmp_path / 'data'}",
            f"weak.model={weak}",
            f"strong.model={strong}",
            f"output_dir={tmp_path / 'runs'}",
            "methods=[xent]",
            "train.probe.epochs=2",
            "bootstrap_samples=20",
            "seeds=1",
            "controls=false",
            "split.weak_train=40",
            "split.transfer=40",
            "split.val=20",
            "split.test=40",
        ],
    )
    store = ArtifactStore(tmp_path / "runs" / "artifacts")
    results = run_experiment(cfg, store)
    assert 0 <= results["students"]["xent"]["accuracy"] <= 1
    (splits_dir,) = (tmp_path / "runs" / "artifacts" / "splits").iterdir()
    owner: dict[int, str] = {}
    for name, split_rows in Artifact("splits", "", splits_dir, {}).arrays().items():
        for row in split_rows:
            assert owner.setdefault(int(row) // 2, name) == name  # a question in one split only
