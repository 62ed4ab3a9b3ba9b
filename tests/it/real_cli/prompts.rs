//! Prompts that cannot go on the command line reach the model whole: one over
//! 100 KiB (Linux caps one argument at 128 KiB, and porki's prompts grow with
//! the plan) and one starting with `-` (it would be read as an option). porki
//! gives both on stdin (`claude -p` with no prompt argument, `codex exec -`),
//! as `porki run --prompt` shows with the real CLIs.

use super::{Setup, text};
use crate::support::porki;

/// `porki run --prompt=PROMPT` with the setup's CLI; the model must have got
/// `prompt` whole, and porki printed its answer.
fn reaches_the_model_whole(setup: &Setup, prompt: &str) {
    let output = porki()
        .args(["run", "--llm-provider", setup.provider])
        .arg("--llm-cli")
        .arg(&setup.cli)
        .args(["--llm-timeout", "90s"])
        .arg(format!("--prompt={prompt}"))
        .current_dir(&setup.dir)
        .envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run porki");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(r#""notes":"summary""#),
        "porki printed the model's answer: {}",
        text(&output)
    );
    let calls = setup.model.calls();
    assert!(
        calls.iter().any(|c| c.text.contains(prompt)),
        "no request held the whole prompt ({} bytes, starting {:?}); requests: {:?}",
        prompt.len(),
        &prompt[..40],
        calls.iter().map(|c| c.text.len()).collect::<Vec<_>>()
    );
}

/// Over 100 KiB (under porki's own 128 KiB argument limit), every line numbered
/// so that a cut or a reordering shows.
fn large_prompt() -> String {
    let mut prompt = String::from("A long prompt: answer with anything.\n");
    let mut line = 0;
    while prompt.len() < 110 * 1024 {
        line += 1;
        prompt.push_str(&format!("line {line:05} of the long prompt, kept whole\n"));
    }
    prompt.push_str("the end of the long prompt");
    prompt
}

/// If it were an argument, claude would print its version instead, and codex refuse it.
const DASH_PROMPT: &str =
    "--version is not an option here: it starts the prompt; answer with anything";

fn both_reach_the_model_whole(provider: &'static str) {
    let setup = Setup::new(provider, "prompts");
    reaches_the_model_whole(&setup, &large_prompt());
    reaches_the_model_whole(&setup, DASH_PROMPT);
}

#[test]
fn claude_gets_a_prompt_over_100_kib_and_one_starting_with_a_dash_whole() {
    both_reach_the_model_whole("claude");
}

#[test]
fn codex_gets_a_prompt_over_100_kib_and_one_starting_with_a_dash_whole() {
    both_reach_the_model_whole("codex");
}
