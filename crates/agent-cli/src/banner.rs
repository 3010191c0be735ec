//! What `agent start` prints when the agent is up: the connector key in full on a terminal, only
//! its first 4 characters where the output goes to a service manager's journal (SPEC §3, §7).

use mover_agent::ConnectorKey;

/// Where standard output goes, as far as the key is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A terminal: a person started the agent and is told to copy the key.
    Terminal,
    /// Anything else (systemd's journal, launchd's or a Windows service's log, a pipe or a
    /// file): kept and readable by others, so it gets a hint instead of the key.
    Recorded,
}

impl Audience {
    /// Judged from standard output: no terminal means the output is recorded somewhere.
    pub fn of_stdout() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Self::Terminal
        } else {
            Self::Recorded
        }
    }
}

/// The lines `agent start` prints once the agent runs, in the original's order.
pub fn start_lines(key: &ConnectorKey, audience: Audience) -> Vec<String> {
    let (shown, initialized) = match audience {
        Audience::Terminal => (key.expose().to_owned(), key.expose().to_owned()),
        Audience::Recorded => (
            format!(
                "{key} (not shown here: this output is not a terminal; run `agent status` as \
                 this agent's user or as an administrator to see the full key)"
            ),
            format!("{key} (see `agent status`)"),
        ),
    };
    vec![
        "Mover Agent Starting".into(),
        "Mover Agent Key:".into(),
        shown,
        "Ctrl-C To Stop".into(),
        format!("Bifrost service initialized with connector key: {initialized}"),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_terminal_gets_the_original_lines_with_the_key() {
        let key = ConnectorKey::parse(KEY).unwrap();
        assert_eq!(
            start_lines(&key, Audience::Terminal),
            [
                "Mover Agent Starting",
                "Mover Agent Key:",
                KEY,
                "Ctrl-C To Stop",
                &format!("Bifrost service initialized with connector key: {KEY}"),
            ]
        );
    }

    #[test]
    fn a_journal_gets_four_characters_and_where_to_look() {
        let key = ConnectorKey::parse(KEY).unwrap();
        let lines = start_lines(&key, Audience::Recorded);
        let text = lines.join("\n");
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains(&KEY[..5]), "{text}");
        assert!(lines[2].starts_with("0123… "), "{text}");
        assert!(text.contains("agent status"), "{text}");
        assert_eq!(lines[3], "Ctrl-C To Stop");
    }
}
