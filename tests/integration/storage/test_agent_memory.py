"""Agent memory with the real embedding model: core blocks, the recall log, archival search by
meaning, one principal's memory apart from another's, and the limits of each call."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.storage.agent_memory import MAX_CORE_CHARS, MAX_SEARCH_K, AgentMemory
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from tests.integration.storage.conftest import Memo

BOT = Principal("alice", "bot")
FACTS = [
    "Alice's dentist appointment is on Thursday at three in the afternoon.",
    "The wifi password at the lake cabin is blue-heron-42.",
    "Bob is severely allergic to peanuts and carries an epinephrine pen.",
    "The quarterly report deadline was moved to the fourteenth of March.",
    "The spare house key is hidden under the third flower pot by the back door.",
    "Alice's favourite dessert is lemon meringue pie.",
    "The car is due for its annual service in November.",
    "The team's stand-up meeting starts at nine fifteen every weekday.",
    "Grandma's birthday is on the second of July; she turns ninety this year.",
    "The cat must get a quarter tablet of thyroid medicine every evening.",
    "The printer on the second floor jams unless you use the manual feed tray.",
    "Alice is learning Portuguese before her trip to Lisbon in May.",
    "The plumber said the kitchen sink leak comes from a worn washer.",
    "Our cloud bill spiked because a test cluster was left running over the weekend.",
    "The library books are due back on the twenty-first.",
    "Bob prefers aisle seats on long flights.",
    "The garden hose splitter is in the blue bin in the garage.",
    "The office recycling is collected on Tuesday mornings.",
    "Alice runs a half marathon in Rotterdam in October.",
    "The sourdough starter needs feeding with flour and water twice a day.",
]
QUESTIONS = {
    "When do I need to go to the dentist?": 0,
    "How do I get on the internet at the cabin by the lake?": 1,
    "Which food could give Bob a dangerous reaction?": 2,
    "Where can I find a key to get into the house?": 4,
    "What should the cat be given at night?": 9,
    "Why was our cloud spending so high?": 13,
}


TURNS = [
    ("user", "Hi, can you help me plan a trip to Lisbon?"),
    ("assistant", "Of course. When are you travelling?"),
    ("user", "In May, for a week. I want to see the tiled buildings."),
    ("assistant", "Then visit the National Tile Museum in Xabregas."),
    ("tool", "weather(Lisbon, May): 22 C, mostly sunny"),
    ("user", "Great, and where should I eat custard tarts?"),
]
TILES = "Which museum shows ceramic tiles?"


@pytest.fixture
def memory(storage: Storage, memo: Memo) -> AgentMemory:
    memo([*FACTS, *QUESTIONS, *(text for _, text in TURNS), TILES])  # one batch
    return storage.memory(BOT, memo)


def test_core_blocks_are_set_replaced_and_removed(memory: AgentMemory) -> None:
    assert memory.core() == {}
    assert memory.core("persona", "A helpful assistant.") == {"persona": "A helpful assistant."}
    memory.core("human", "Alice, who likes tea.")
    assert memory.core("persona", "A terse assistant.") == {
        "human": "Alice, who likes tea.",
        "persona": "A terse assistant.",
    }
    assert memory.core("human", "") == {"persona": "A terse assistant."}
    assert memory.core("never-set", "") == {"persona": "A terse assistant."}
    assert memory.core("persona", "x" * MAX_CORE_CHARS)["persona"] == "x" * MAX_CORE_CHARS


def test_a_core_label_must_be_a_name(memory: AgentMemory) -> None:
    for label in ("", "two words", "-leading", "a/b", "x" * 129, "ü", "nul\x00"):
        with pytest.raises(InvalidRequestError) as error:
            memory.core(label, "text")
        assert error.value.field == "label", label
    assert memory.core() == {}
    assert memory.core("a.b_c@d-1", "fine") == {"a.b_c@d-1": "fine"}


def test_core_text_must_be_given_and_fit(memory: AgentMemory) -> None:
    with pytest.raises(InvalidRequestError) as error:
        memory.core("persona")
    assert error.value.field == "text"
    with pytest.raises(InvalidRequestError) as error:
        memory.core("persona", "x" * (MAX_CORE_CHARS + 1))
    assert error.value.field == "text"
    assert memory.core() == {}


def test_archival_search_finds_the_fact_a_paraphrased_question_asks_for(
    memory: AgentMemory,
) -> None:
    stored = memory.store_many(FACTS)
    assert [item.seq for item in stored] == list(range(1, len(FACTS) + 1))
    assert {item.tier for item in stored} == {"archival"}
    assert memory.count() == len(FACTS)
    for question, expected in QUESTIONS.items():
        hits = memory.search(question, k=3)
        assert hits[0].text == FACTS[expected], question
        assert hits[0].key == stored[expected].key
        distances = [hit.distance for hit in hits]
        assert distances == sorted(distances)  # nearest first
    assert len(memory.search("anything", k=MAX_SEARCH_K)) == len(FACTS)
    one = memory.store("Alice's passport number ends in 4471.")
    assert one.seq == len(FACTS) + 1
    assert memory.search("What are the last digits of the passport?", k=1)[0].key == one.key


def test_the_recall_log_keeps_the_conversation_in_order(memory: AgentMemory) -> None:
    turns = TURNS
    logged = [memory.log(role, text) for role, text in turns]
    assert [item.seq for item in logged] == [1, 2, 3, 4, 5, 6]
    log = memory.recall()
    assert [(item.role, item.text) for item in log] == turns
    assert [item.seq for item in memory.recall(first_seq=3, limit=2)] == [3, 4]
    assert memory.recall(first_seq=7) == []
    assert memory.count("recall") == 6 and memory.count("archival") == 0
    hits = memory.search(TILES, k=2, tier="recall")
    assert hits[0].seq == 4 and hits[0].tier == "recall"
    assert memory.search(TILES, k=2) == []  # archival is empty


def test_concurrent_turns_get_distinct_seq_numbers_in_log_order(storage: Storage) -> None:
    threads, turns = 4, 25
    barrier = threading.Barrier(threads, timeout=60)

    def log(writer: int) -> list[int]:
        memory = storage.memory(BOT, None)
        barrier.wait()
        return [memory.log("user", f"writer {writer} turn {n}").seq for n in range(turns)]

    with ThreadPoolExecutor(threads) as pool:
        given = [seq for seqs in pool.map(log, range(threads)) for seq in seqs]
    assert sorted(given) == list(range(1, threads * turns + 1))
    log_ = storage.memory(BOT, None).recall()
    assert [item.seq for item in log_] == list(range(1, threads * turns + 1))
    for writer in range(threads):  # each writer's turns keep their order
        mine = [item.text for item in log_ if item.text.startswith(f"writer {writer} ")]
        assert mine == [f"writer {writer} turn {n}" for n in range(turns)]


def test_each_principal_has_a_memory_of_its_own(storage: Storage, memo: Memo) -> None:
    bot = storage.memory(BOT, memo)
    bot.core("persona", "alice's bot")
    bot.store("The launch window opens at dawn.")
    bot.log("user", "hello from alice's bot's user")
    for other in (Principal("alice"), Principal("alice", "other"), Principal("bob", "bot")):
        memory = storage.memory(other, memo)
        assert memory.core() == {}
        assert memory.recall() == []
        assert memory.search("When does the launch window open?", k=5) == []
        memory.store(f"{other.name} keeps its own notes.")
        memory.core("persona", other.name)
    assert bot.core() == {"persona": "alice's bot"}
    assert [hit.text for hit in bot.search("notes", k=10)] == ["The launch window opens at dawn."]
    assert storage.memory(BOT, memo).count() == 1  # a new handle sees the same memory


def test_search_arguments_are_checked(memory: AgentMemory) -> None:
    memory.store("something to find")
    for k in (0, MAX_SEARCH_K + 1, -1, 2.5, "3"):
        with pytest.raises(InvalidRequestError) as error:
            memory.search("find", k=k)  # type: ignore[arg-type]
        assert error.value.field == "k", k
    with pytest.raises(InvalidRequestError) as error:
        memory.search("find", tier="core")
    assert error.value.field == "tier"
    with pytest.raises(InvalidRequestError) as error:
        memory.search("")
    assert error.value.field == "query"
    assert len(memory.search("find", k=1)) == 1


def test_entries_are_checked_before_anything_is_stored(memory: AgentMemory) -> None:
    with pytest.raises(InvalidRequestError) as error:
        memory.log("narrator", "Once upon a time")
    assert error.value.field == "role"
    for bad in ("", None, 42):
        with pytest.raises(InvalidRequestError) as error:
            memory.store(bad)  # type: ignore[arg-type]
        assert error.value.field == "text"
    with pytest.raises(InvalidRequestError):
        memory.store_many(["fine", ""])  # one bad text stores none of them
    assert memory.count() == 0 and memory.count("recall") == 0


def test_without_an_embedding_model_entries_are_kept_but_not_searchable(
    storage: Storage,
) -> None:
    memory = storage.memory(BOT, None)
    memory.log("user", "kept without a vector")
    assert [item.text for item in memory.recall()] == ["kept without a vector"]
    with pytest.raises(InvalidRequestError) as error:
        memory.search("kept")
    assert error.value.field == "query"
