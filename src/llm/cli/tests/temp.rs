//! The private temp folder of a codex call under edit (`temp.rs`): given to
//! the child and to codex's sandbox, and gone when the call ends, however it ends.

use super::*;

/// What the fake wrote to `name`, once it has written a whole line.
async fn line(fake: &Fake, name: &str) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(fake.file(name))
            && let Some(line) = text.strip_suffix('\n')
        {
            return line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake CLI never wrote {name}");
}

fn args(fake: &Fake) -> Vec<String> {
    std::fs::read_to_string(fake.file("args"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn codex_under_edit_gets_a_private_temp_folder_it_may_write_and_porki_removes() {
    let fake = Fake::new(
        r#"printf '%s\n' "$@" > "$DIR/args"
stat -c %a "$TMPDIR" > "$DIR/mode"
echo "$TMP $TEMP" > "$DIR/tmp-temp"
echo x > "$TMPDIR/x" && mkdir -p "$TMPDIR/a/b" && echo written > "$DIR/wrote"
echo "$TMPDIR" > "$DIR/tmpdir"
echo ok"#,
    );
    let provider = fake.provider(CliFlavor::Codex);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let answer = provider
            .call(&request("hi", Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(answer.text, "ok");
        let tmpdir = line(&fake, "tmpdir").await;
        std::fs::remove_file(fake.file("tmpdir")).unwrap();
        let path = PathBuf::from(&tmpdir);
        assert_eq!(path.parent(), Some(std::env::temp_dir().as_path()));
        assert!(tmpdir.contains("/porki-tmp-"), "{tmpdir}");
        assert_eq!(line(&fake, "mode").await, "700");
        assert_eq!(line(&fake, "tmp-temp").await, format!("{tmpdir} {tmpdir}"));
        assert_eq!(line(&fake, "wrote").await, "written");
        // codex's sandbox is told it may write there.
        let args = args(&fake);
        assert!(
            args.windows(2).any(|w| w == ["--add-dir", tmpdir.as_str()]),
            "{args:?}"
        );
        assert!(!path.exists(), "{tmpdir} outlived the call");
        seen.push(tmpdir);
    }
    assert_ne!(seen[0], seen[1], "each call gets its own folder");
}

#[tokio::test]
async fn claude_and_codex_outside_edit_keep_porkis_own_temp_folder() {
    let fake =
        Fake::new(r#"printf '%s\n' "$@" > "$DIR/args"; echo "<$TMPDIR>" > "$DIR/tmpdir"; echo ok"#);
    let porkis = format!("<{}>", std::env::var("TMPDIR").unwrap_or_default());
    let cases = [
        (CliFlavor::Claude, Permissions::Edit),
        (CliFlavor::Codex, Permissions::ReadOnly),
        (CliFlavor::Codex, Permissions::Full),
        (CliFlavor::Command, Permissions::Edit),
    ];
    for (flavor, permissions) in cases {
        // claude's answer is no JSON envelope here: only what it was given matters.
        let _ = fake
            .provider(flavor)
            .with_permissions(permissions)
            .call(&request("hi", Duration::from_secs(10)))
            .await;
        assert_eq!(
            line(&fake, "tmpdir").await,
            porkis,
            "{flavor:?} {permissions:?}"
        );
        std::fs::remove_file(fake.file("tmpdir")).unwrap();
        let args = args(&fake);
        assert!(
            !args.iter().any(|a| a.contains("porki-tmp-")),
            "{flavor:?} {permissions:?}: {args:?}"
        );
    }
}

#[tokio::test]
async fn a_timed_out_codex_call_leaves_no_temp_folder() {
    let fake =
        Fake::new(r#"echo "$TMPDIR" > "$DIR/tmpdir"; sleep 1000 & echo $! > "$DIR/pid"; wait"#);
    let err = fake
        .provider(CliFlavor::Codex)
        .call(&request("hi", Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err}");
    let tmpdir = line(&fake, "tmpdir").await;
    assert!(!Path::new(&tmpdir).exists(), "{tmpdir} outlived the call");
}

#[tokio::test]
async fn a_dropped_codex_call_removes_its_temp_folder_once_its_group_is_gone() {
    // The grandchild ignores SIGTERM and keeps making the folder again until
    // SIGKILL: a folder removed before the group is gone would come back.
    let fake = Fake::new(
        r#"trap '' TERM
echo "$TMPDIR" > "$DIR/tmpdir"
(while :; do mkdir -p "$TMPDIR/again"; sleep 0.05; done) & echo $! > "$DIR/pid"
wait"#,
    );
    let provider = fake.provider(CliFlavor::Codex);
    let call =
        tokio::spawn(async move { provider.call(&request("hi", Duration::from_secs(60))).await });
    let pid = fake.grandchild().await;
    let tmpdir = PathBuf::from(line(&fake, "tmpdir").await);
    call.abort();
    let _ = call.await;
    assert!(
        gone_within(pid, KILL_GRACE + Duration::from_secs(3)).await,
        "grandchild {pid} survived"
    );
    let started = Instant::now();
    while tmpdir.exists() && started.elapsed() < KILL_GRACE * 2 + Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!tmpdir.exists(), "{} outlived the call", tmpdir.display());
}
