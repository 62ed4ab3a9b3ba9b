//! The `porki` command line.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("porki: no command yet")
}
