use super::*;

fn ids(tasks: &[TaskItem]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

/// A task's markers: (review, approval, soft).
type Mk = (bool, bool, bool);
const M: Mk = (false, false, false);
const REVIEW: Mk = (true, false, false);
const APPROVAL: Mk = (false, true, false);
const SOFT: Mk = (false, false, true);

fn marks(tasks: &[TaskItem]) -> Vec<Mk> {
    tasks
        .iter()
        .map(|t| (t.review, t.approval, t.assignment == Assignment::Soft))
        .collect()
}

#[test]
fn explicit_ids_and_trailing_after() {
    let md = "## Tasks\n- [scope] Define scope\n- [collect-sources] Collect sources after: scope\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["scope", "collect-sources"]);
    assert_eq!(t[1].title, "Collect sources");
    assert_eq!(t[1].after, ["scope"]);
    assert!(t[0].after.is_empty());
}

#[test]
fn order_gives_edges_when_after_is_missing() {
    let t = task_list("## Tasks\n- One\n- Two\n- Three\n");
    assert_eq!(ids(&t), ["one", "two", "three"]);
    assert!(t[0].after.is_empty());
    assert_eq!(t[1].after, ["one"]);
    assert_eq!(t[2].after, ["two"]);
}

#[test]
fn after_none_or_dash_means_no_dependency() {
    let t = task_list("## Tasks\n- A\n- B after: none\n- C AFTER: -\n");
    assert!(t[1].after.is_empty());
    assert!(t[2].after.is_empty());
}

#[test]
fn colon_prefix_is_an_id_only_when_lowercase() {
    let t = task_list("## Tasks\n- t1: First thing\n- Note: second thing\n");
    assert_eq!(t[0].id, "t1");
    assert_eq!(t[0].title, "First thing");
    assert_eq!(t[1].id, "note-second-thing");
    assert_eq!(t[1].title, "Note: second thing");
}

#[test]
fn priority_and_artifacts_in_any_order_and_case() {
    let t = task_list(
        "### Research tasks\n- [w] Write report Artifacts: `report.md`, notes.md; Priority: 7 after: none\n",
    );
    assert_eq!(t[0].title, "Write report");
    assert_eq!(t[0].priority, Some(7));
    assert_eq!(t[0].artifacts, ["report.md", "notes.md"]);
    assert!(t[0].after.is_empty());
}

#[test]
fn a_bad_priority_is_ignored() {
    let t = task_list("## Tasks\n- Do it priority: high\n");
    assert_eq!(t[0].priority, None);
    assert_eq!(t[0].title, "Do it");
}

#[test]
fn slugs_are_unique_and_bounded() {
    let long = "x".repeat(100);
    let md = format!("## Tasks\n- Same\n- Same\n- Same\n- {long}\n- {long}\n- [same-2] explicit\n");
    let t = task_list(&md);
    assert_eq!(ids(&t)[..3], ["same", "same-3", "same-4"]);
    // Room is left for the suffixes of the tasks porki adds (`.fix-N`…).
    assert_eq!(t[3].id.len(), MAX_PLANNED_ID_LEN);
    assert_eq!(t[4].id.len(), MAX_PLANNED_ID_LEN);
    assert!(t[4].id.ends_with("-2"));
    assert_eq!(t[5].id, "same-2");
    for task in &t {
        assert!(check_id("task id", &task.id).is_ok(), "{}", task.id);
    }
}

#[test]
fn after_may_name_a_title() {
    let t = task_list("## Tasks\n- Collect sources\n- Write after: Collect sources\n");
    assert_eq!(t[1].after, ["collect-sources"]);
}

#[test]
fn only_tasks_sections_count_and_nested_lists_are_notes() {
    let md = "# Agent\n- not a task\n## Tasks\n- A\n  - detail\n- B\n## Notes\n- also not\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["a", "b"]);
    assert_eq!(t[1].after, ["a"]);
}

#[test]
fn a_new_list_starts_a_new_chain() {
    let md = "## Tasks\n- A\n- B\n\nThen, separately:\n\n1. C\n2. D\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["a", "b", "c", "d"]);
    assert!(t[2].after.is_empty());
    assert_eq!(t[3].after, ["c"]);
}

#[test]
fn sub_headings_stay_in_the_section_until_a_same_level_heading() {
    let md = "## Tasks\n### Phase one\n- A\n### Phase two\n- B\n## Other\n- C\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["a", "b"]);
}

#[test]
fn checkboxes_are_not_ids() {
    let t = task_list("## Tasks\n- [ ] Open item\n- [x] Done item\n");
    assert_eq!(ids(&t), ["open-item", "done-item"]);
}

#[test]
fn no_tasks_section_gives_nothing() {
    assert!(task_list("# Title\n- a\n- b\n").is_empty());
    assert!(task_list("").is_empty());
}

#[test]
fn the_agent_template_has_a_readable_task_list() {
    let t = task_list(&super::super::agent_template(
        "research_agent",
        "research_agent",
        "RESEARCH_AGENT.md",
    ));
    assert_eq!(ids(&t), ["scope", "collect-sources", "summarize", "check"]);
    assert_eq!(t[0].priority, Some(10));
    assert_eq!(t[1].after, ["scope"]);
    assert_eq!(t[2].artifacts, ["report.md"]);
    assert_eq!(t[3].after, ["scope", "summarize"]);
    assert_eq!(marks(&t), [M, M, REVIEW, M]);
}

#[test]
fn the_module_example_reads_as_documented() {
    let md = "## Tasks\n\
        - [scope] Define the scope priority: 10\n\
        - [collect-sources] Collect sources artifacts: sources.md (soft)\n\
        - Summarize (after: collect-sources, scope) (priority: 2) (review)\n\
        - [ ] review: Review the report; after: Summarize (approval)\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["scope", "collect-sources", "summarize", "review"]);
    assert_eq!(t[1].after, ["scope"]);
    assert_eq!(t[1].artifacts, ["sources.md"]);
    assert_eq!(t[2].title, "Summarize");
    assert_eq!(t[2].after, ["collect-sources", "scope"]);
    assert_eq!(t[2].priority, Some(2));
    assert_eq!(t[3].title, "Review the report");
    assert_eq!(t[3].after, ["summarize"]);
    assert_eq!(marks(&t), [M, SOFT, REVIEW, APPROVAL]);
}

#[test]
fn fields_in_parentheses_or_after_separators() {
    let md = "## Tasks\n\
        - [a] A (after: none) (priority: 2)\n\
        - [b] B (after: a, c) (artifacts: `b.md`)\n\
        - [c] C ; priority: 4 ; after: a\n\
        - D | priority: 1 | after: b |\n\
        - E, after: d — priority: 3\n";
    let t = task_list(md);
    assert_eq!(ids(&t), ["a", "b", "c", "d", "e"]);
    for (task, title) in t.iter().zip(["A", "B", "C", "D", "E"]) {
        assert_eq!(task.title, title);
    }
    assert!(t[0].after.is_empty());
    assert_eq!(t[0].priority, Some(2));
    assert_eq!(t[1].after, ["a", "c"]);
    assert_eq!(t[1].artifacts, ["b.md"]);
    assert_eq!(
        (t[2].priority, &t[2].after[..]),
        (Some(4), &["a".to_owned()][..])
    );
    assert_eq!(
        (t[3].priority, &t[3].after[..]),
        (Some(1), &["b".to_owned()][..])
    );
    assert_eq!(
        (t[4].priority, &t[4].after[..]),
        (Some(3), &["d".to_owned()][..])
    );
}

#[test]
fn repeated_fields_add_up_and_a_bad_priority_keeps_the_good_one() {
    let t = task_list("## Tasks\n- A priority: 5 priority: high after: x after: y\n");
    assert_eq!(t[0].priority, Some(5));
    assert_eq!(t[0].after, ["x", "y"]);
}

#[test]
fn checkboxes_written_as_text_are_dropped() {
    let t = task_list("## Tasks\n- [ ]Open\n- [x]Done\n- [X] [big] Big one\n");
    assert_eq!(ids(&t), ["open", "done", "big"]);
    assert_eq!(t[0].title, "Open");
}

#[test]
fn items_without_a_title_take_their_id_or_are_skipped() {
    let t = task_list("## Tasks\n- [scope]\n- [ ]\n- after: scope\n-\n- Next\n");
    assert_eq!(ids(&t), ["scope", "next"]);
    assert_eq!(t[0].title, "scope");
    assert_eq!(t[1].after, ["scope"]);
}

#[test]
fn items_are_read_as_plain_text() {
    let md = "## Tasks\n\
        - Read the *docs* and `code`\n\
        - Read [the guide](https://example.com/after:x)\n\
        - Two\n  lines\n\n  and a paragraph\n\n      code block after: nothing\n";
    let t = task_list(md);
    assert_eq!(t[0].title, "Read the docs and code");
    assert_eq!(t[1].title, "Read the guide");
    assert_eq!(t[1].after, ["read-the-docs-and-code"]);
    assert_eq!(t[2].title, "Two lines and a paragraph");
    assert_eq!(t[2].after, ["read-the-guide"]);
}

#[test]
fn brackets_that_are_no_id_stay_in_the_title() {
    let t = task_list("## Tasks\n- [Collect sources] first\n");
    assert_eq!(t[0].id, "collect-sources-first");
    assert_eq!(t[0].title, "[Collect sources] first");
}

#[test]
fn unique_id_adds_a_suffix_within_the_length_limit() {
    let taken: HashSet<String> = ["a", "a-2"].map(String::from).into();
    assert_eq!(unique_id("b", &taken), "b");
    assert_eq!(unique_id("a", &taken), "a-3");
    let long = "x".repeat(MAX_PLANNED_ID_LEN);
    let id = unique_id(&long, &HashSet::from([long.clone()]));
    assert_eq!(id.len(), MAX_PLANNED_ID_LEN);
    assert!(id.ends_with("-2"));
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC*") {
        let _ = task_list(&s);
    }

    #[test]
    fn never_panics_on_task_lists(s in "(## Tasks\n|- |\\[[a-z ]{0,4}\\] ?|after: ?|priority: ?|artifacts: ?|\\(?(review|Approval|soft|, )\\)?|[a-zé, -]{0,8}|\n){0,30}") {
        for t in task_list(&s) {
            proptest::prop_assert!(check_id("task id", &t.id).is_ok(), "{}", t.id);
        }
    }
}

#[test]
fn markers_are_read_wherever_fields_may_stand_and_leave_the_text() {
    let md = "## Tasks\n\
        - [a] Draft the guide (review)\n\
        - [b] (Approval) Publish it after: a\n\
        - (SOFT) [c] Tidy up\n\
        - [ ] [d] Check (review) the links; priority: 3\n\
        - [e] Ship; after: a, b (approval) artifacts: e.md\n\
        - [f] Launch (review, Approval,soft) | after: e\n\
        - [g] Glue(review) stays, as does (review)glue\n";
    let t = task_list(md);
    let titles: Vec<&str> = t.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Draft the guide",
            "Publish it",
            "Tidy up",
            "Check the links",
            "Ship",
            "Launch",
            "Glue(review) stays, as does (review)glue",
        ]
    );
    assert_eq!(
        marks(&t),
        [
            REVIEW,
            APPROVAL,
            SOFT,
            REVIEW,
            APPROVAL,
            (true, true, true),
            M
        ]
    );
    assert_eq!(t[3].priority, Some(3));
    assert_eq!(t[4].after, ["a", "b"]);
    assert_eq!(t[4].artifacts, ["e.md"]);
    assert_eq!(t[5].after, ["e"]);
}

#[test]
fn titles_about_reviews_and_approvals_are_not_markers() {
    let md = "## Tasks\n\
        - Review the draft\n\
        - (Review the draft)\n\
        - Approval flow (soft launch)\n\
        - review: Review the report\n\
        - [skills] Review, approval and soft skills\n\
        - [approval] Approval\n\
        - Write notes artifacts: notes(review).md\n\
        - Unclosed (review\n";
    let t = task_list(md);
    assert_eq!(
        ids(&t),
        [
            "review-the-draft",
            "review-the-draft-2",
            "approval-flow-soft-launch",
            "review",
            "skills",
            "approval",
            "write-notes",
            "unclosed-review",
        ]
    );
    assert_eq!(t[1].title, "(Review the draft)");
    assert_eq!(t[2].title, "Approval flow (soft launch)");
    assert_eq!(t[6].artifacts, ["notes(review).md"]);
    assert_eq!(t[7].title, "Unclosed (review");
    assert!(marks(&t).iter().all(|m| *m == M), "{:?}", marks(&t));
}

#[test]
fn an_item_of_only_an_id_and_markers_takes_its_id_as_title() {
    let t = task_list("## Tasks\n- [draft] (review)\n- (review)\n- Next\n");
    assert_eq!(ids(&t), ["draft", "next"]);
    assert_eq!(t[0].title, "draft");
    assert_eq!(marks(&t), [REVIEW, M]);
}

/// Words a title may hold, marker words among them, none a field.
const TITLE_WORDS: [&str; 9] = [
    "Review", "review", "the", "draft", "Approval", "approval", "soft", "SOFT", "launch",
];

proptest::proptest! {
    #[test]
    fn markers_never_eat_a_title(
        words in proptest::collection::vec(0..TITLE_WORDS.len(), 1..6),
        wrap in proptest::bool::ANY,
        review in proptest::bool::ANY,
        approval in proptest::bool::ANY,
        soft in proptest::bool::ANY,
        at_start in proptest::bool::ANY,
    ) {
        let title = words.iter().map(|&w| TITLE_WORDS[w]).collect::<Vec<_>>().join(" ");
        // A title in parentheses of its own is a title too, unless it is only marker words.
        let all_markers = words.iter().all(|&w| TITLE_WORDS[w] != "the"
            && TITLE_WORDS[w] != "draft" && TITLE_WORDS[w] != "launch");
        let written = if wrap && !all_markers { format!("({title})") } else { title.clone() };
        let mut item_marks: Vec<&str> = Vec::new();
        if review { item_marks.push("(review)"); }
        if approval { item_marks.push("(Approval)"); }
        if soft { item_marks.push("(SOFT)"); }
        let item = if at_start {
            format!("{} {written} after: none", item_marks.join(" "))
        } else {
            format!("{written} {} priority: 2", item_marks.join(" "))
        };
        let t = task_list(&format!("## Tasks\n- {item}\n"));
        proptest::prop_assert_eq!(t.len(), 1, "{}", item);
        proptest::prop_assert_eq!(&t[0].title, &written, "{}", item);
        proptest::prop_assert_eq!(marks(&t)[0], (review, approval, soft), "{}", item);
    }
}
