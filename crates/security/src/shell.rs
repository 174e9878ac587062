//! Walks the bash syntax tree of a command line and hands every simple command, with its words
//! evaluated as far as is statically possible, to the command rules. Substitutions, process
//! substitutions and here-docs are analysed recursively; anything else dynamic is marked so the
//! rules can refuse it.
//!
//! Over 800 lines because it is one recursive walk over brush-parser's AST with one evaluation
//! context; the per-program rules live in `commands/`.

use std::path::{Path, PathBuf};

use brush_parser::ast::{
    self, Command, CommandPrefixOrSuffixItem, CompoundCommand, CompoundList, ExtendedTestExpr,
    IoFileRedirectKind, IoFileRedirectTarget, IoRedirect, Pipeline, SimpleCommand,
};
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};

use crate::{Category, Finding, MAX_COMMAND_BYTES, MAX_DEPTH, Validator, commands};

/// A command word after static evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// Fully known text.
    Lit(String),
    /// Known text with unquoted glob or brace characters: expands to an unknown list of words.
    Glob(String),
    /// Depends on run-time values (parameters, substitutions); the text is the source, for display.
    Dyn(String),
}

impl Arg {
    pub(crate) fn lit(&self) -> Option<&str> {
        match self {
            Arg::Lit(s) => Some(s),
            _ => None,
        }
    }

    /// The text (literal, pattern or source) for display and pattern checks.
    pub(crate) fn text(&self) -> &str {
        match self {
            Arg::Lit(s) | Arg::Glob(s) | Arg::Dyn(s) => s,
        }
    }
}

/// Analysis state for one validation.
pub(crate) struct Ctx<'a> {
    pub(crate) validator: &'a Validator,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) findings: Vec<Finding>,
    depth: usize,
    /// The previous stage's command name when this command reads a pipe.
    pub(crate) pipe_from: Option<String>,
}

impl<'a> Ctx<'a> {
    fn new(validator: &'a Validator, cwd: Option<&Path>) -> Self {
        Self {
            validator,
            cwd: cwd.map(Path::to_path_buf),
            findings: Vec::new(),
            depth: 0,
            pipe_from: None,
        }
    }

    pub(crate) fn push(
        &mut self,
        command: impl Into<String>,
        category: Category,
        reason: impl Into<String>,
    ) {
        let mut command = command.into();
        if command.chars().count() > 80 {
            command = command.chars().take(77).collect::<String>() + "...";
        }
        self.findings.push(Finding {
            command,
            category,
            reason: reason.into(),
        });
    }

    pub(crate) fn block(&mut self, command: impl Into<String>, reason: impl Into<String>) {
        self.push(command, Category::Blocked, reason);
    }

    /// Analyses a nested script (`bash -c` payload, `$(…)`, backticks).
    pub(crate) fn script(&mut self, text: &str, what: &str) {
        if self.depth >= MAX_DEPTH {
            self.block(what, format!("nested more than {MAX_DEPTH} levels deep"));
            return;
        }
        self.depth += 1;
        let saved = self.pipe_from.take();
        parse_and_walk(self, text, what);
        self.pipe_from = saved;
        self.depth -= 1;
    }

    /// Analyses an argv that a wrapper will run (no shell in between).
    pub(crate) fn payload(&mut self, argv: &[Arg]) {
        if self.depth >= MAX_DEPTH {
            self.block(
                "wrapper",
                format!("nested more than {MAX_DEPTH} levels deep"),
            );
            return;
        }
        self.depth += 1;
        commands::classify(self, argv);
        self.depth -= 1;
    }
}

pub(crate) fn analyse_script(v: &Validator, command: &str, cwd: Option<&Path>) -> Vec<Finding> {
    let mut ctx = Ctx::new(v, cwd);
    parse_and_walk(&mut ctx, command, "command");
    ctx.findings
}

pub(crate) fn analyse_argv(v: &Validator, argv: &[String], cwd: Option<&Path>) -> Vec<Finding> {
    let mut ctx = Ctx::new(v, cwd);
    if argv.is_empty() {
        return ctx.findings;
    }
    if let Some(bad) = argv.iter().find(|a| a.contains('\0')) {
        ctx.block(bad.replace('\0', "\\0"), "contains a NUL byte");
        return ctx.findings;
    }
    let args: Vec<Arg> = argv.iter().cloned().map(Arg::Lit).collect();
    commands::classify(&mut ctx, &args);
    ctx.findings
}

fn options() -> ParserOptions {
    ParserOptions {
        // Extended globs change how `!(…)` parses; bash -c runs without them by default.
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

fn parse_and_walk(ctx: &mut Ctx<'_>, text: &str, what: &str) {
    if text.len() > MAX_COMMAND_BYTES {
        ctx.block(what, format!("longer than {MAX_COMMAND_BYTES} bytes"));
        return;
    }
    if text.contains('\0') {
        ctx.block(what, "contains a NUL byte");
        return;
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        ctx.block(what, "contains control characters");
        return;
    }
    // The parser is not ours; a panic in it must refuse the command, never take the service down.
    let parsed = std::panic::catch_unwind(|| {
        Parser::new(std::io::BufReader::new(text.as_bytes()), &options()).parse_program()
    });
    let program = match parsed {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            ctx.block(what, format!("cannot be parsed as a shell command ({e})"));
            return;
        }
        Err(_) => {
            ctx.block(what, "cannot be parsed as a shell command (parser failure)");
            return;
        }
    };
    for list in &program.complete_commands {
        compound_list(ctx, list);
    }
}

fn compound_list(ctx: &mut Ctx<'_>, list: &CompoundList) {
    for item in &list.0 {
        let and_or = &item.0;
        pipeline(ctx, &and_or.first);
        for next in &and_or.additional {
            match next {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => pipeline(ctx, p),
            }
        }
    }
}

fn pipeline(ctx: &mut Ctx<'_>, p: &Pipeline) {
    let saved = ctx.pipe_from.take();
    for (i, cmd) in p.seq.iter().enumerate() {
        ctx.pipe_from = if i == 0 {
            None
        } else {
            Some(stage_name(&p.seq[i - 1]))
        };
        command(ctx, cmd);
    }
    ctx.pipe_from = saved;
}

/// A short name for a pipeline stage, for messages like "download piped into a shell".
fn stage_name(cmd: &Command) -> String {
    match cmd {
        Command::Simple(s) => s
            .word_or_name
            .as_ref()
            .map(|w| w.value.clone())
            .unwrap_or_else(|| "assignment".to_owned()),
        Command::Compound(..) => "compound command".to_owned(),
        Command::Function(_) => "function".to_owned(),
        Command::ExtendedTest(..) => "[[".to_owned(),
    }
}

fn command(ctx: &mut Ctx<'_>, cmd: &Command) {
    match cmd {
        Command::Simple(s) => simple(ctx, s),
        Command::Compound(c, redirects) => {
            compound(ctx, c);
            if let Some(r) = redirects {
                for io in &r.0 {
                    redirect(ctx, io);
                }
            }
        }
        Command::Function(f) => {
            let name = f.fname.value.clone();
            let body = format!("{:?}", f.body);
            if body.contains(&format!("\"{name}\"")) {
                ctx.block(
                    format!("{name}()"),
                    "recursive function definition (fork bomb)",
                );
            } else {
                ctx.block(
                    format!("{name}()"),
                    "function definitions are refused: calls to them cannot be analysed",
                );
            }
        }
        Command::ExtendedTest(t, redirects) => {
            extended_test(ctx, &t.expr);
            if let Some(r) = redirects {
                for io in &r.0 {
                    redirect(ctx, io);
                }
            }
        }
    }
}

fn compound(ctx: &mut Ctx<'_>, c: &CompoundCommand) {
    match c {
        CompoundCommand::Arithmetic(a) => arithmetic(ctx, &a.expr.value),
        CompoundCommand::ArithmeticForClause(f) => {
            for e in [&f.initializer, &f.condition, &f.updater]
                .into_iter()
                .flatten()
            {
                arithmetic(ctx, &e.value);
            }
            compound_list(ctx, &f.body.list);
        }
        CompoundCommand::BraceGroup(b) => compound_list(ctx, &b.list),
        CompoundCommand::Subshell(s) => compound_list(ctx, &s.list),
        CompoundCommand::ForClause(f) => {
            for w in f.values.iter().flatten() {
                eval_word(ctx, &w.value);
            }
            compound_list(ctx, &f.body.list);
        }
        CompoundCommand::CaseClause(c) => {
            eval_word(ctx, &c.value.value);
            for item in &c.cases {
                for p in &item.patterns {
                    eval_word(ctx, &p.value);
                }
                if let Some(cmd) = &item.cmd {
                    compound_list(ctx, cmd);
                }
            }
        }
        CompoundCommand::IfClause(i) => {
            compound_list(ctx, &i.condition);
            compound_list(ctx, &i.then);
            for e in i.elses.iter().flatten() {
                if let Some(c) = &e.condition {
                    compound_list(ctx, c);
                }
                compound_list(ctx, &e.body);
            }
        }
        CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
            compound_list(ctx, &w.0);
            compound_list(ctx, &w.1.list);
        }
        CompoundCommand::Coprocess(_) => ctx.block("coproc", "coprocesses are refused"),
    }
}

fn extended_test(ctx: &mut Ctx<'_>, e: &ExtendedTestExpr) {
    match e {
        ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
            extended_test(ctx, a);
            extended_test(ctx, b);
        }
        ExtendedTestExpr::Not(a) | ExtendedTestExpr::Parenthesized(a) => extended_test(ctx, a),
        ExtendedTestExpr::UnaryTest(_, w) => {
            eval_word(ctx, &w.value);
        }
        ExtendedTestExpr::BinaryTest(pred, a, b) => {
            let l = eval_word(ctx, &a.value);
            let r = eval_word(ctx, &b.value);
            use ast::BinaryPredicate as B;
            let arithmetic = matches!(
                pred,
                B::ArithmeticEqualTo
                    | B::ArithmeticNotEqualTo
                    | B::ArithmeticLessThan
                    | B::ArithmeticLessThanOrEqualTo
                    | B::ArithmeticGreaterThan
                    | B::ArithmeticGreaterThanOrEqualTo
            );
            if arithmetic {
                for side in [l, r] {
                    let numeric = side.lit().is_some_and(|s| {
                        !s.is_empty()
                            && s.trim_start_matches('-')
                                .chars()
                                .all(|c| c.is_ascii_digit())
                    });
                    if !numeric {
                        ctx.block(
                            format!("[[ … {} … ]]", side.text()),
                            "arithmetic comparison of a non-number: bash evaluates it as an expression, which can run code",
                        );
                    }
                }
            }
        }
    }
}

/// Arithmetic is evaluated recursively by bash (`a[$(cmd)]` inside a variable runs `cmd`), so only
/// constant expressions pass.
fn arithmetic(ctx: &mut Ctx<'_>, expr: &str) {
    let constant = expr
        .chars()
        .all(|c| c.is_ascii_digit() || " \t+-*/%()<>=!&|^~?:,".contains(c));
    if constant {
        ctx.push(
            format!("(( {} ))", expr.trim()),
            Category::ReadOnly,
            "constant arithmetic",
        );
    } else {
        ctx.block(
            format!("(( {} ))", expr.trim()),
            "arithmetic on variables is refused: bash re-evaluates variable values as expressions, which can run code",
        );
    }
}

/// Environment variables that change which program runs or what a shell executes.
const DANGEROUS_VARS: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PS4",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "GLOBIGNORE",
    "BASH_XTRACEFD",
    "PAGER",
    "GIT_PAGER",
    "MANPAGER",
    "EDITOR",
    "VISUAL",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_PARAMETERS",
    "GIT_EXTERNAL_DIFF",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "LESSOPEN",
    "LESSCLOSE",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "TMPDIR",
    "HOME",
    "SHELL",
    "TERMINFO",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RESOLV_HOST_CONF",
];

/// Refuses assignments to variables that would redirect what runs.
pub(crate) fn check_assignment(ctx: &mut Ctx<'_>, name: &str) {
    let upper = name.to_ascii_uppercase();
    if DANGEROUS_VARS.contains(&upper.as_str())
        || upper.starts_with("LD_")
        || upper.starts_with("BASH_FUNC_")
        || upper.starts_with("GIT_CONFIG_")
    {
        ctx.block(
            format!("{name}=…"),
            format!("assigning `{name}` changes what runs and is refused"),
        );
    }
}

fn simple(ctx: &mut Ctx<'_>, s: &SimpleCommand) {
    let mut argv: Vec<Arg> = Vec::new();
    for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
        prefix_or_suffix(ctx, item, &mut argv, true);
    }
    if let Some(name) = &s.word_or_name {
        argv.push(eval_word(ctx, &name.value));
    }
    for item in s.suffix.iter().flat_map(|x| x.0.iter()) {
        prefix_or_suffix(ctx, item, &mut argv, false);
    }
    if argv.is_empty() {
        // Assignments and redirections only.
        if ctx.findings.is_empty() || s.prefix.is_some() {
            ctx.push(
                "assignment",
                Category::ReadOnly,
                "sets shell variables only",
            );
        }
        return;
    }
    commands::classify(ctx, &argv);
}

fn prefix_or_suffix(
    ctx: &mut Ctx<'_>,
    item: &CommandPrefixOrSuffixItem,
    argv: &mut Vec<Arg>,
    is_prefix: bool,
) {
    match item {
        CommandPrefixOrSuffixItem::IoRedirect(io) => redirect(ctx, io),
        CommandPrefixOrSuffixItem::Word(w) => argv.push(eval_word(ctx, &w.value)),
        CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
            let name = match &a.name {
                ast::AssignmentName::VariableName(n) => n.clone(),
                ast::AssignmentName::ArrayElementName(n, sub) => {
                    if !sub.chars().all(|c| c.is_ascii_digit()) {
                        ctx.block(
                            w.value.clone(),
                            "array subscripts are evaluated as arithmetic and can run code",
                        );
                    }
                    n.clone()
                }
            };
            check_assignment(ctx, &name);
            match &a.value {
                ast::AssignmentValue::Scalar(v) => {
                    eval_word(ctx, &v.value);
                }
                ast::AssignmentValue::Array(items) => {
                    for (k, v) in items {
                        if let Some(k) = k {
                            eval_word(ctx, &k.value);
                        }
                        eval_word(ctx, &v.value);
                    }
                }
            }
            if !is_prefix {
                // `export X=1`, `declare X=1`: the word is also an argument.
                argv.push(Arg::Dyn(w.value.clone()));
            }
        }
        CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
            compound_list(ctx, &sub.list);
            argv.push(Arg::Dyn("/dev/fd/63".to_owned()));
        }
    }
}

fn redirect(ctx: &mut Ctx<'_>, io: &IoRedirect) {
    match io {
        IoRedirect::File(_, kind, target) => {
            let writes = matches!(
                kind,
                IoFileRedirectKind::Write
                    | IoFileRedirectKind::Append
                    | IoFileRedirectKind::ReadAndWrite
                    | IoFileRedirectKind::Clobber
                    | IoFileRedirectKind::DuplicateOutput
            );
            match target {
                IoFileRedirectTarget::Filename(w) => {
                    let arg = eval_word(ctx, &w.value);
                    redirect_target(ctx, &arg, writes);
                }
                IoFileRedirectTarget::Fd(_) => {}
                IoFileRedirectTarget::Duplicate(w) => {
                    let arg = eval_word(ctx, &w.value);
                    let is_fd = arg.lit().is_some_and(|s| {
                        s == "-" || s.trim_end_matches('-').chars().all(|c| c.is_ascii_digit())
                    });
                    if !is_fd {
                        redirect_target(ctx, &arg, writes);
                    }
                }
                IoFileRedirectTarget::ProcessSubstitution(_, sub) => compound_list(ctx, &sub.list),
            }
        }
        IoRedirect::HereDocument(_, doc) => {
            if doc.requires_expansion {
                match word::parse_heredoc(&doc.doc.value, &options()) {
                    Ok(pieces) => {
                        let mut out = Eval::default();
                        pieces_into(ctx, &doc.doc.value, &pieces, false, &mut out);
                    }
                    Err(_) => ctx.block("<<here-doc", "here-document cannot be parsed"),
                }
            }
        }
        IoRedirect::HereString(_, w) => {
            eval_word(ctx, &w.value);
        }
        IoRedirect::OutputAndError(w, _) => {
            let arg = eval_word(ctx, &w.value);
            redirect_target(ctx, &arg, true);
        }
    }
}

/// Device files that are harmless to write to.
const SAFE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/tty",
    "/dev/zero",
];

fn redirect_target(ctx: &mut Ctx<'_>, target: &Arg, writes: bool) {
    let shown = format!("{} {}", if writes { ">" } else { "<" }, target.text());
    let path = match target {
        Arg::Lit(p) => p.clone(),
        Arg::Glob(_) | Arg::Dyn(_) => {
            // Fail closed for reads too: a computed path may be bash's /dev/tcp/host/port.
            ctx.block(
                shown,
                "redirection target is computed at run time and cannot be checked (it could be a file outside the roots or a /dev/tcp connection)",
            );
            return;
        }
    };
    if is_bash_socket(&path) {
        ctx.push(
            shown,
            Category::Network,
            "opens a network connection (bash's /dev/tcp or /dev/udp redirection)",
        );
        return;
    }
    if SAFE_DEVICES.contains(&path.as_str()) || path.starts_with("/dev/fd/") {
        return;
    }
    if let Some(rule) = commands::sensitive(ctx, &path) {
        ctx.block(
            shown,
            format!("touches a sensitive file (deny rule `{rule}`)"),
        );
        return;
    }
    if !writes {
        ctx.push(shown, Category::ReadOnly, "reads a file");
        return;
    }
    if path.starts_with("/dev/") || path.starts_with("/proc/") || path.starts_with("/sys/") {
        ctx.block(shown, "writes to a device or kernel file");
        return;
    }
    if let Some(sandbox) = ctx.validator.sandbox() {
        let expanded = expand_tilde(&path);
        if let Err(e) = sandbox.resolve(Path::new(&expanded), ctx.cwd.as_deref()) {
            ctx.block(
                shown,
                format!("redirection refused by the path sandbox: {e}"),
            );
            return;
        }
    }
    ctx.push(shown, Category::Write, "redirects output into a file");
}

/// Bash opens a TCP or UDP socket for a redirection to `/dev/tcp/<host>/<port>` or
/// `/dev/udp/<host>/<port>` (no such file needs to exist); `//` and `/./` spellings included.
fn is_bash_socket(path: &str) -> bool {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    path.starts_with('/') && matches!(parts.as_slice(), ["dev", "tcp" | "udp", ..])
}

fn expand_tilde(path: &str) -> String {
    match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!(
                "{}{rest}",
                std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned())
            )
        }
        _ => path.to_owned(),
    }
}

#[derive(Default)]
struct Eval {
    text: String,
    glob: bool,
    dynamic: bool,
}

/// Statically evaluates a word: quotes removed, escapes applied, substitutions analysed.
pub(crate) fn eval_word(ctx: &mut Ctx<'_>, raw: &str) -> Arg {
    let pieces = match word::parse(raw, &options()) {
        Ok(p) => p,
        Err(_) => {
            ctx.block(raw, "word cannot be parsed");
            return Arg::Dyn(raw.to_owned());
        }
    };
    let mut out = Eval::default();
    pieces_into(ctx, raw, &pieces, false, &mut out);
    if out.dynamic {
        Arg::Dyn(raw.to_owned())
    } else if out.glob {
        Arg::Glob(out.text)
    } else {
        Arg::Lit(out.text)
    }
}

fn pieces_into(
    ctx: &mut Ctx<'_>,
    raw: &str,
    pieces: &[WordPieceWithSource],
    quoted: bool,
    out: &mut Eval,
) {
    for p in pieces {
        match &p.piece {
            WordPiece::Text(t) => {
                if !quoted && is_pattern(t) {
                    out.glob = true;
                }
                out.text.push_str(t);
            }
            WordPiece::SingleQuotedText(t) => out.text.push_str(t),
            WordPiece::AnsiCQuotedText(t) => match ansi_c(t) {
                Some(s) => out.text.push_str(&s),
                None => {
                    ctx.block(
                        format!("$'{t}'"),
                        "ANSI-C quoted string with an escape that cannot be decoded",
                    );
                    out.dynamic = true;
                }
            },
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                pieces_into(ctx, raw, inner, true, out);
            }
            WordPiece::TildeExpansion(t) => {
                use brush_parser::word::TildeExpr;
                match t {
                    TildeExpr::Home => out.text.push('~'),
                    TildeExpr::UserHome(u) => {
                        out.text.push('~');
                        out.text.push_str(u);
                    }
                    _ => out.dynamic = true,
                }
            }
            WordPiece::ParameterExpansion(_) => {
                let src = raw.get(p.start_index..p.end_index).unwrap_or(raw);
                parameter(ctx, src);
                out.dynamic = true;
            }
            WordPiece::CommandSubstitution(s) => {
                ctx.script(s, "$(…)");
                out.dynamic = true;
            }
            WordPiece::BackquotedCommandSubstitution(s) => {
                ctx.script(&unescape_backquoted(s), "`…`");
                out.dynamic = true;
            }
            WordPiece::EscapeSequence(e) => {
                let c = e.strip_prefix('\\').unwrap_or(e);
                if quoted && !matches!(c, "$" | "`" | "\"" | "\\" | "\n") {
                    out.text.push_str(e);
                } else if c != "\n" {
                    out.text.push_str(c);
                }
            }
            WordPiece::ArithmeticExpression(e) => {
                arithmetic(ctx, &e.value);
                out.dynamic = true;
            }
        }
    }
}

/// Unquoted text that the shell expands: globs (`*`, `?`, `[…]`) and braces (`{a,b}`, `{1..3}`).
fn is_pattern(t: &str) -> bool {
    if t.contains(['*', '?']) {
        return true;
    }
    let bracket = t.find('[').is_some_and(|i| t[i + 1..].contains(']'));
    let brace = t.find('{').is_some_and(|i| {
        t[i + 1..].find('}').is_some_and(|j| {
            t[i + 1..i + 1 + j].contains(',') || t[i + 1..i + 1 + j].contains("..")
        })
    });
    bracket || brace
}

/// Parameter expansions are values, not commands, unless they hide code.
fn parameter(ctx: &mut Ctx<'_>, src: &str) {
    if src.contains("$(") || src.contains('`') || src.contains("<(") || src.contains(">(") {
        ctx.block(
            src,
            "command substitution inside a parameter expansion is refused",
        );
    } else if src.contains("@P") {
        ctx.block(src, "prompt expansion (@P) can run code and is refused");
    } else if let Some(open) = src.find('[') {
        let close = src[open..].find(']').map_or(src.len(), |c| open + c);
        let sub = &src[open + 1..close];
        if !(sub == "@" || sub == "*" || sub.chars().all(|c| c.is_ascii_digit())) {
            ctx.block(
                src,
                "array subscripts are evaluated as arithmetic and can run code",
            );
        }
    } else if src.contains("$((") {
        ctx.block(src, "arithmetic inside a parameter expansion is refused");
    }
}

/// Inside backticks, `\\`, `` \` `` and `\$` lose their backslash.
fn unescape_backquoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '\\' | '`' | '$')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Decodes the body of `$'…'` as bash does; `None` for escapes we do not model.
pub(crate) fn ansi_c(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'e' | 'E' => out.push('\x1b'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' | '\'' | '"' | '?' => out.push(e),
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut hex = String::new();
                while hex.len() < max {
                    match chars.peek() {
                        Some(h) if h.is_ascii_hexdigit() => {
                            hex.push(*h);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                let v = u32::from_str_radix(&hex, 16).ok()?;
                out.push(char::from_u32(v)?);
            }
            '0'..='7' => {
                let mut oct = String::from(e);
                while oct.len() < 3 {
                    match chars.peek() {
                        Some(o @ '0'..='7') => {
                            oct.push(*o);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                let v = u32::from_str_radix(&oct, 8).ok()?;
                out.push(char::from_u32(v)?);
            }
            'c' => {
                let ctl = chars.next()?;
                out.push(char::from_u32((ctl as u32) & 0x1f)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_c_decodes_what_bash_decodes() {
        assert_eq!(ansi_c(r"\x72m").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"\162\155").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"\u0072m").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"a\nb").as_deref(), Some("a\nb"));
        assert_eq!(ansi_c(r"\q"), None);
    }
}
