//! What isolation costs per task: a worktree, a one-file commit, a merge, the
//! worktree's removal (`cargo test --lib git::tests::cost -- --ignored --nocapture`).

use std::time::{Duration, Instant};

use super::*;

/// Tasks measured.
const TASKS: u32 = 40;

#[tokio::test]
#[ignore = "a measurement: run it alone, on a quiet machine"]
async fn one_task_costs_a_worktree_a_commit_and_a_merge_in_a_few_tens_of_ms() {
    for owned in [false, true] {
        let dir = if owned {
            temp("cost-owned")
        } else {
            user_repo()
        };
        let repo = GoalRepo::open_or_init(&git().await, &dir, "g", None, None)
            .await
            .unwrap();
        let mut spent = [Duration::ZERO; 4];
        for n in 0..TASKS {
            let task = format!("t{n}");
            let clock = Instant::now();
            let tip = repo.tip().await.unwrap();
            let wt = repo.create_worktree(&task, &tip).await.unwrap();
            spent[0] += clock.elapsed();
            write(&wt.cli_dir, &format!("{task}.txt"), "done\n");
            let clock = Instant::now();
            let commit = repo.commit(&wt, &agent(), &task, 1).await.unwrap().unwrap();
            spent[1] += clock.elapsed();
            let clock = Instant::now();
            let outcome = repo.merge(&commit, &task, 1).await.unwrap();
            assert!(
                matches!(outcome, MergeOutcome::Merged { .. }),
                "{outcome:?}"
            );
            spent[2] += clock.elapsed();
            let clock = Instant::now();
            repo.remove_worktree(&task).await.unwrap();
            spent[3] += clock.elapsed();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(TASKS);
        let total: Duration = spent.iter().sum();
        println!(
            "{} repository, git {:?}: worktree {:.1} ms, commit {:.1} ms, merge {:.1} ms, remove {:.1} ms; {:.1} ms per task",
            if owned { "owned" } else { "adopted" },
            repo.git.version(),
            ms(spent[0]),
            ms(spent[1]),
            ms(spent[2]),
            ms(spent[3]),
            ms(total)
        );
        assert!(ms(total) < 250.0, "{:.1} ms per task", ms(total));
    }
}
