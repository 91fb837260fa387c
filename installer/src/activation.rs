//! Activation variables (I7): what `conda activate` would set, read
//! statically from the image, for `<env>.d/env.toml` (the launcher passes
//! them into the container, L13) and the modulefile (I8).
//!
//! Every env gets `CONDA_PREFIX` and `CONDA_DEFAULT_ENV`. Each
//! `<prefix>/<env>/etc/conda/activate.d/*.sh` of the image (in name order,
//! as conda sources them) is read with `backhand` and understood only when
//! every line is a comment, a static `export NAME=VALUE` or a plain
//! `NAME=VALUE`. Values may be quoted and may refer to variables already
//! known (`$CONDA_PREFIX`, `${CONDA_PREFIX}`, an earlier assignment). A
//! script with anything else (a conditional, a command, command
//! substitution, a reference to a variable only known at run time such as
//! `$HOME`) is *not captured*, whole: none of its lines are used (an
//! `export` inside an `if` must not become unconditional), and it is named
//! in `not_captured` and in a warning with the first line at fault.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::{EntryKind, EnvImage};

/// `etc/conda/activate.d`, relative to the env's prefix.
pub const ACTIVATE_DIR: &str = "etc/conda/activate.d";

/// The variables an env's activation sets, and the scripts that could not
/// be read statically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub env: BTreeMap<String, String>,
    pub not_captured: Vec<NotCaptured>,
}

/// A script whose effect is not in `env`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCaptured {
    /// Relative to the env's prefix: `etc/conda/activate.d/NAME.sh`.
    pub script: String,
    pub reason: String,
}

/// Read the activation of `env`, whose prefix inside the image is
/// `env_prefix` (`<container_prefix>/<env>`).
pub fn read(image: &EnvImage, env_prefix: &Path, env: &str) -> Activation {
    let mut activation = Activation::default();
    activation.env.insert("CONDA_DEFAULT_ENV".into(), env.to_string());
    activation
        .env
        .insert("CONDA_PREFIX".into(), env_prefix.to_string_lossy().into_owned());
    let dir = env_prefix.join(ACTIVATE_DIR);
    let mut entries = image.list_dir(&dir).unwrap_or_default();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let name = entry.name.to_string_lossy().into_owned();
        if !name.ends_with(".sh") || entry.kind == EntryKind::Dir {
            // Scripts for other shells (.csh, .fish, .bat) are not sourced by sh.
            continue;
        }
        let script = format!("{ACTIVATE_DIR}/{name}");
        let not_captured = |reason: String| NotCaptured {
            script: script.clone(),
            reason,
        };
        let outcome = match entry.kind {
            EntryKind::File => match image.read_file(&dir.join(&entry.name)) {
                Some(Ok(bytes)) => match String::from_utf8(bytes) {
                    Ok(text) => parse_script(&text, &activation.env),
                    Err(_) => Err("not UTF-8 text".to_string()),
                },
                Some(Err(e)) => Err(format!("cannot read it from the image: {e}")),
                None => Err("not a regular file".to_string()),
            },
            EntryKind::Symlink(target) => Err(format!("a symbolic link (to {})", target.display())),
            _ => Err("not a regular file".to_string()),
        };
        match outcome {
            Ok(exports) => activation.env.extend(exports),
            Err(reason) => activation.not_captured.push(not_captured(reason)),
        }
    }
    activation
}

/// The variables a script exports, given those already `known`; or why it
/// cannot be read statically (with the line number).
pub fn parse_script(text: &str, known: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    // Plain assignments are visible to later lines but not exported, unless
    // the name is exported (before or after).
    let mut vars = known.clone();
    let mut exported = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}", index + 1);
        let words = split_words(line).map_err(at)?;
        let Some(first) = words.first() else { continue };
        let (is_export, assignments) = if first == "export" {
            (true, &words[1..])
        } else {
            (false, &words[..])
        };
        if is_export && assignments.is_empty() {
            return Err(at("`export` without a variable".into()));
        }
        for word in assignments {
            match split_assignment(word) {
                Some((name, raw)) => {
                    let value = expand(raw, &vars).map_err(at)?;
                    if value.chars().any(char::is_control) {
                        // Lmod rejects a modulefile holding `\t` and the like.
                        return Err(at(format!(
                            "the value of {name} contains a control character (a modulefile cannot set it)"
                        )));
                    }
                    vars.insert(name.to_string(), value.clone());
                    if is_export || exported.contains_key(name) {
                        exported.insert(name.to_string(), value);
                    }
                }
                None if is_export && is_var_name(word) => match vars.get(word.as_str()) {
                    Some(value) => {
                        exported.insert(word.clone(), value.clone());
                    }
                    None => return Err(at(format!("`export {word}` of a variable not set statically"))),
                },
                None => return Err(at(format!("`{}` is not a static `export NAME=VALUE`", shown(first)))),
            }
        }
    }
    Ok(exported)
}

fn shown(word: &str) -> String {
    let mut text: String = word.chars().filter(|c| !c.is_control()).take(40).collect();
    if word.chars().count() > 40 {
        text.push('…');
    }
    text
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME` and the raw value of a word `NAME=VALUE`.
fn split_assignment(word: &str) -> Option<(&str, &str)> {
    let (name, raw) = word.split_once('=')?;
    is_var_name(name).then_some((name, raw))
}

/// Split one line into raw words (quotes kept, for `expand`), refusing
/// anything that makes the line more than a list of words: operators,
/// redirections, command substitution, line continuations.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            '#' if word.is_empty() => break,
            '\'' | '"' => {
                word.push(c);
                let mut closed = false;
                while let Some(q) = chars.next() {
                    word.push(q);
                    if q == '\\' && c == '"' {
                        match chars.next() {
                            Some(escaped) => word.push(escaped),
                            None => break,
                        }
                    } else if q == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err("a quote that does not close on this line".into());
                }
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    word.push('\\');
                    word.push(escaped);
                }
                None => return Err("a line continuation".into()),
            },
            '$' if chars.peek() == Some(&'(') => return Err("command substitution `$(`".into()),
            '`' => return Err("command substitution".into()),
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return Err(format!("shell syntax `{c}`"));
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// The value of a raw word: quotes removed, `$NAME`/`${NAME}` replaced by
/// values from `vars`. Anything only known at run time is an error.
fn expand(raw: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    let mut in_double = false;
    if raw.starts_with('~') {
        return Err("`~` (the home directory, only known at run time)".into());
    }
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => {
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    out.push(q);
                }
            }
            '"' => in_double = !in_double,
            '\\' => {
                let Some(next) = chars.next() else { break };
                // Inside double quotes a backslash only escapes these.
                if in_double && !matches!(next, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(next);
            }
            '`' => return Err("command substitution".into()),
            '*' | '?' | '[' if !in_double => return Err(format!("a glob pattern `{c}`")),
            '$' => out.push_str(&expand_variable(&mut chars, vars)?),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// After a `$`: `NAME` or `{NAME}`; its value from `vars`.
fn expand_variable(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let name: String = match chars.peek() {
        Some('(') => return Err("command substitution `$(`".into()),
        Some('{') => {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                    Some(c) => {
                        return Err(format!(
                            "parameter expansion with `{c}` (only ${{NAME}} is read statically)"
                        ))
                    }
                    None => return Err("`${` without `}`".into()),
                }
            }
            name
        }
        _ => {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            name
        }
    };
    if !is_var_name(&name) {
        return Err("a special parameter `$` (only $NAME and ${NAME} are read statically)".into());
    }
    vars.get(&name)
        .cloned()
        .ok_or_else(|| format!("refers to ${name}, which is only known at run time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeMap<String, String> {
        BTreeMap::from([("CONDA_PREFIX".to_string(), "/opt/conda/e".to_string())])
    }

    fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
        parse_script(text, &known()).map(|m| m.into_iter().collect())
    }

    fn ok(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        Ok(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect())
    }

    #[test]
    fn i7_static_exports_are_read() {
        let text = "#!/bin/sh\n# comment\n\nexport PROJ_DATA=\"${CONDA_PREFIX}/share/proj\"\n\
                    export GDAL_DATA=$CONDA_PREFIX/share/gdal  # trailing comment\n\
                    export QUOTED='a $b \"c\"' PLAIN=x\n\
                    export ESC=\"say \\\"hi\\\" \\$5\"\n";
        assert_eq!(
            parse(text),
            ok(&[
                ("ESC", "say \"hi\" $5"),
                ("GDAL_DATA", "/opt/conda/e/share/gdal"),
                ("PLAIN", "x"),
                ("PROJ_DATA", "/opt/conda/e/share/proj"),
                ("QUOTED", "a $b \"c\""),
            ])
        );
    }

    #[test]
    fn i7_plain_assignments_feed_later_exports_but_are_not_exported() {
        let text = "base=$CONDA_PREFIX/share\nexport A=$base/a\nexport B\nB=${base}/b\n";
        assert_eq!(
            parse(text).unwrap_err(),
            "line 3: `export B` of a variable not set statically"
        );
        let text = "base=$CONDA_PREFIX/share\nexport A=$base/a\nA=$A:more\n";
        assert_eq!(parse(text), ok(&[("A", "/opt/conda/e/share/a:more")]));
    }

    #[test]
    fn i7_computed_scripts_are_refused_with_the_line() {
        let cases = [
            ("export A=$(pwd)\n", "line 1: command substitution `$(`"),
            ("export A=`pwd`\n", "line 1: command substitution"),
            ("export A=\"`pwd`\"\n", "line 1: command substitution"),
            ("export A=\"$(pwd)\"\n", "line 1: command substitution `$(`"),
            ("if [ -n \"$X\" ]; then\n", "line 1: shell syntax `;`"),
            (
                "if true\nthen export A=1\nfi\n",
                "line 1: `if` is not a static `export NAME=VALUE`",
            ),
            (
                "\nexport A=$HOME/x\n",
                "line 2: refers to $HOME, which is only known at run time",
            ),
            (
                "export B=ok\nexport A=\"x\ty\"\n",
                "line 2: the value of A contains a control character (a modulefile cannot set it)",
            ),
            (
                "export A=${B:-x}\n",
                "line 1: parameter expansion with `:` (only ${NAME} is read statically)",
            ),
            (
                "export A=~/x\n",
                "line 1: `~` (the home directory, only known at run time)",
            ),
            ("export A=/x/*\n", "line 1: a glob pattern `*`"),
            ("export A=\"open\n", "line 1: a quote that does not close on this line"),
            ("export A=1 \\\n", "line 1: a line continuation"),
            ("unset A\n", "line 1: `unset` is not a static `export NAME=VALUE`"),
            (
                "export A=$1\n",
                "line 1: a special parameter `$` (only $NAME and ${NAME} are read statically)",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(parse(text).unwrap_err(), why, "{text:?}");
        }
    }
}
