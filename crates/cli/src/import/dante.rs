//! `socksgate import dante FILE`: a Dante `sockd.conf` as a socksgate configuration.
//!
//! Mapped: `internal` (addresses) to listeners, `external` to each rule's source address or
//! interface, `socksmethod`/`method` to the listeners' methods and an authentication back
//! end, `client` rules to client rules, `socks` rules to request rules (from, to, ports,
//! commands, users, methods, log), `route` statements to upstream groups and route rules,
//! `timeout.*`, `logoutput`, `user.unprivileged`. Everything else becomes a comment where
//! it was, and counts as dropped.

use std::fmt::Write;

use super::Conversion;

/// A statement: `key: words` or a block `kind [action] { … }`, with its line.
#[derive(Debug)]
enum Statement {
    Setting {
        line: usize,
        key: String,
        words: Vec<String>,
    },
    Block {
        line: usize,
        kind: String,
        action: Option<String>,
        body: Vec<(String, Vec<String>)>,
    },
}

/// Splits the file into statements: comments removed, blocks gathered.
fn statements(text: &str) -> Result<Vec<Statement>, String> {
    // Tokens with their line numbers; `{`, `}` and `key:` stand alone.
    let mut tokens: Vec<(usize, String)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let spaced = line.replace('{', " { ").replace('}', " } ");
        for word in spaced.split_whitespace() {
            tokens.push((index + 1, word.to_owned()));
        }
    }
    let mut statements = Vec::new();
    let mut position = 0;
    while position < tokens.len() {
        let (line, word) = &tokens[position];
        let line = *line;
        if let Some(key) = word.strip_suffix(':') {
            // A setting runs to the end of its line.
            let words: Vec<String> = tokens[position + 1..]
                .iter()
                .take_while(|(other, _)| *other == line)
                .map(|(_, word)| word.clone())
                .collect();
            position += 1 + words.len();
            statements.push(Statement::Setting {
                line,
                key: key.to_owned(),
                words,
            });
            continue;
        }
        // A block: kind, an optional action, `{`, key: values…, `}`.
        let kind = word.clone();
        let mut next = position + 1;
        let action = match tokens.get(next) {
            Some((_, brace)) if brace == "{" => None,
            Some((_, action)) => {
                next += 1;
                Some(action.clone())
            }
            None => return Err(format!("line {line}: `{kind}` without a block")),
        };
        if tokens.get(next).map(|(_, t)| t.as_str()) != Some("{") {
            return Err(format!("line {line}: expected `{{` after `{kind}`"));
        }
        next += 1;
        let mut body: Vec<(String, Vec<String>)> = Vec::new();
        loop {
            let Some((_, token)) = tokens.get(next) else {
                return Err(format!("line {line}: `{kind}` block not closed"));
            };
            next += 1;
            if token == "}" {
                break;
            }
            match token.strip_suffix(':') {
                Some(key) => body.push((key.to_owned(), Vec::new())),
                None => match body.last_mut() {
                    Some((_, values)) => values.push(token.clone()),
                    None => return Err(format!("line {line}: `{token}` before any keyword")),
                },
            }
        }
        position = next;
        statements.push(Statement::Block {
            line,
            kind,
            action,
            body,
        });
    }
    Ok(statements)
}

/// The conversion in progress.
#[derive(Default)]
struct Converter {
    listeners: Vec<String>,
    methods: Vec<&'static str>,
    auth: Option<String>,
    external: Option<String>,
    settings: Vec<String>,
    client_rules: Vec<String>,
    rules: Vec<String>,
    /// Where the first `socks pass` rule went: routes are decided just before it.
    first_pass: Option<usize>,
    route_rules: Vec<String>,
    upstreams: Vec<String>,
    notes: Vec<String>,
    dropped: usize,
    /// `socks pass` rules (their lines) whose destination is private space, and those
    /// blocks: Dante serves them, socksgate's guard would refuse them on a public listener.
    private_passes: Vec<(usize, Vec<socksgate_policy::Cidr>)>,
}

impl Converter {
    fn drop(&mut self, line: usize, what: &str, why: &str) {
        self.notes.push(format!("line {line}: `{what}`: {why}"));
        self.dropped += 1;
    }

    fn note(&mut self, line: usize, text: &str) {
        self.notes.push(format!("line {line}: {text}"));
    }

    fn setting(&mut self, line: usize, key: &str, words: &[String]) {
        let all = words.join(" ");
        let shown = format!("{key}: {all}");
        match key {
            "internal" => match endpoint(words) {
                Ok((host, port)) if host.parse::<std::net::IpAddr>().is_ok() => {
                    let address = if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    };
                    self.listeners.push(address);
                }
                Ok((host, _)) => self.drop(
                    line,
                    &shown,
                    &format!("{host} is an interface: listen on its address instead"),
                ),
                Err(why) => self.drop(line, &shown, &why),
            },
            "external" => match words.first() {
                Some(first) if first.parse::<std::net::IpAddr>().is_ok() => {
                    self.external = Some(format!("source_address = \"{first}\""));
                }
                Some(interface) => self.external = Some(format!("interface = \"{interface}\"")),
                None => self.drop(line, &shown, "no address"),
            },
            "external.rotation" => match words.first().map(String::as_str) {
                // The kernel's routes choose: socksgate's default.
                Some("route") => {
                    self.external = None;
                    self.note(line, "external.rotation: route is socksgate's default");
                }
                Some("none") => {}
                _ => self.drop(line, &shown, "no equivalent"),
            },
            "socksmethod" | "method" => {
                if !self.methods.is_empty() {
                    self.note(line, "a later socksmethod replaces the earlier one");
                    self.methods.clear();
                }
                for word in words {
                    match word.as_str() {
                        "none" => self.methods.push("none"),
                        "username" => {
                            self.methods.push("password");
                            // Dante checks the system's password database.
                            self.auth
                                .get_or_insert_with(|| "pam_service = \"login\"".to_owned());
                        }
                        "pam" | "pam.username" | "pam.any" => {
                            self.methods.push("password");
                            self.auth = Some("pam_service = \"sockd\"".to_owned());
                        }
                        "gssapi" => self.methods.push("gssapi"),
                        other => {
                            self.drop(line, &shown, &format!("method {other} has no equivalent"))
                        }
                    }
                }
                let mut seen = Vec::new();
                self.methods.retain(|method| {
                    let new = !seen.contains(method);
                    seen.push(*method);
                    new
                });
            }
            "clientmethod" => {
                if words.iter().any(|word| word != "none") {
                    self.drop(
                        line,
                        &shown,
                        "socksgate authenticates in the SOCKS negotiation only",
                    );
                }
            }
            "logoutput" => {
                let output = words.iter().find_map(|word| match word.as_str() {
                    "stderr" => Some("stderr".to_owned()),
                    "stdout" => Some("stdout".to_owned()),
                    path if path.starts_with('/') => Some(path.to_owned()),
                    _ => None,
                });
                if words.iter().any(|word| word == "syslog") {
                    self.note(
                        line,
                        "syslog: socksgate logs to stderr, which journald keeps",
                    );
                }
                if words.len() > 1 {
                    self.note(
                        line,
                        "socksgate logs to one place: the first usable one is kept",
                    );
                }
                if let Some(output) = output {
                    self.settings.push(format!("[log]\noutput = \"{output}\""));
                }
            }
            "user.unprivileged" => match words.first() {
                Some(user) if user != "root" => {
                    self.settings.push(format!("[process]\nuser = \"{user}\""));
                }
                _ => {}
            },
            "user.privileged" => self.note(
                line,
                "user.privileged: socksgate needs root only to bind, then runs as [process] user",
            ),
            "timeout.negotiate" => self.timeout(line, &shown, "handshake", words),
            "timeout.connect" => self.timeout(line, &shown, "connect", words),
            "timeout.io" => self.timeout(line, &shown, "idle", words),
            _ => self.drop(line, &shown, "no equivalent in socksgate"),
        }
    }

    fn timeout(&mut self, line: usize, shown: &str, name: &str, words: &[String]) {
        match words
            .first()
            .and_then(|seconds| seconds.parse::<u64>().ok())
        {
            Some(0) if name == "idle" => {
                self.settings.push("[timeouts]\nidle = \"off\"".to_owned())
            }
            Some(seconds) if seconds > 0 => {
                self.settings
                    .push(format!("[timeouts]\n{name} = \"{seconds}s\""));
            }
            _ => self.drop(line, shown, "not a number of seconds"),
        }
    }

    fn block(
        &mut self,
        line: usize,
        kind: &str,
        action: Option<&str>,
        body: &[(String, Vec<String>)],
    ) {
        match (kind, action) {
            ("client", Some(action @ ("pass" | "block"))) => self.client_rule(line, action, body),
            ("socks", Some(action @ ("pass" | "block"))) => self.socks_rule(line, action, body),
            ("route", None) => self.route(line, body),
            _ => self.drop(
                line,
                &format!("{kind} {}", action.unwrap_or("")),
                "unknown block",
            ),
        }
    }

    fn client_rule(&mut self, line: usize, action: &str, body: &[(String, Vec<String>)]) {
        let mut rule = format!("# line {line}\n[[client_rule]]\n");
        for (key, values) in body {
            match key.as_str() {
                "from" => match address_match(values) {
                    Ok(Match { blocks, ports, .. }) => {
                        if !blocks.is_empty() {
                            let _ = writeln!(rule, "from = {}", list(&blocks));
                        }
                        if !ports.is_empty() {
                            self.drop(line, "from: … port", "client rules match addresses only");
                        }
                    }
                    Err(why) => return self.drop(line, &format!("client {action}"), &why),
                },
                // The address the client reached: socksgate's listeners are given by address.
                "to" => {
                    if address_match(values).map_or(true, |m| !m.blocks.is_empty()) {
                        self.note(
                            line,
                            "client rule `to:`: the rule applies on every listener",
                        );
                    }
                }
                "log" | "clientmethod" | "socksmethod" | "method" => {}
                other => self.drop(
                    line,
                    &format!("{other}: {}", values.join(" ")),
                    "no equivalent",
                ),
            }
        }
        let _ = writeln!(
            rule,
            "action = \"{}\"",
            if action == "pass" { "allow" } else { "deny" }
        );
        self.client_rules.push(rule);
    }

    fn socks_rule(&mut self, line: usize, action: &str, body: &[(String, Vec<String>)]) {
        let mut rule = format!("# line {line}\n[[rule]]\n");
        let mut logged = false;
        let mut private = Vec::new();
        for (key, values) in body {
            match key.as_str() {
                "from" | "to" => match address_match(values) {
                    Ok(Match {
                        blocks,
                        ports,
                        notes,
                    }) => {
                        for note in notes {
                            self.note(line, &note);
                        }
                        let name = if key == "from" { "from" } else { "to" };
                        if key == "to" && action == "pass" {
                            for block in &blocks {
                                match privacy(block) {
                                    Privacy::Private(cidr) => private.push(cidr),
                                    Privacy::Partly => self.note(
                                        line,
                                        &format!(
                                            "{block} is partly private: the private-destination \
                                             guard refuses that part, which Dante served"
                                        ),
                                    ),
                                    Privacy::Public => {}
                                }
                            }
                        }
                        if !blocks.is_empty() {
                            let _ = writeln!(rule, "{name} = {}", list(&blocks));
                        }
                        if !ports.is_empty() {
                            if key == "from" {
                                self.drop(
                                    line,
                                    "from: … port",
                                    "rules match destination ports only",
                                );
                            } else {
                                let _ = writeln!(rule, "ports = {}", list(&ports));
                            }
                        }
                    }
                    Err(why) => return self.drop(line, &format!("socks {action}"), &why),
                },
                "command" => {
                    let mut commands: Vec<&str> = Vec::new();
                    for value in values {
                        match value.as_str() {
                            "connect" => commands.push("connect"),
                            "bind" => commands.push("bind"),
                            "udpassociate" => commands.push("udp"),
                            "bindreply" | "udpreply" => self.note(
                                line,
                                &format!("{value}: replies to what a client opened are part of its session in socksgate"),
                            ),
                            other => self.drop(line, &format!("command: {other}"), "unknown command"),
                        }
                    }
                    if commands.is_empty() {
                        // Only replies: nothing of socksgate's commands is matched.
                        return self.drop(line, &format!("socks {action}"), "matches only bindreply/udpreply, which socksgate decides with the session");
                    }
                    let _ = writeln!(rule, "commands = {}", list(&commands));
                }
                "protocol" => {
                    let tcp = values.iter().any(|v| v == "tcp");
                    let udp = values.iter().any(|v| v == "udp");
                    if tcp != udp {
                        let commands: &[&str] = if tcp { &["connect", "bind"] } else { &["udp"] };
                        let _ = writeln!(rule, "commands = {}", list(commands));
                    }
                }
                "user" => {
                    let _ = writeln!(rule, "users = {}", list(values));
                }
                "socksmethod" | "method" => {
                    let methods: Vec<&str> = values
                        .iter()
                        .filter_map(|value| match value.as_str() {
                            "none" => Some("none"),
                            "username" | "pam" | "pam.username" | "pam.any" => Some("password"),
                            "gssapi" => Some("gssapi"),
                            _ => None,
                        })
                        .collect();
                    let _ = writeln!(rule, "methods = {}", list(&methods));
                }
                "log" => logged = true,
                other => self.drop(
                    line,
                    &format!("{other}: {}", values.join(" ")),
                    "no equivalent in a socksgate rule",
                ),
            }
        }
        if !logged {
            // Dante logs a rule's sessions only when it says so.
            rule.push_str("log = \"off\"\n");
        }
        let _ = writeln!(
            rule,
            "action = \"{}\"",
            if action == "pass" { "allow" } else { "deny" }
        );
        if action == "pass" {
            if let Some(external) = &self.external {
                let _ = writeln!(rule, "{external}");
            }
            self.first_pass.get_or_insert(self.rules.len());
        }
        if !private.is_empty() {
            self.private_passes.push((line, private));
        }
        self.rules.push(rule);
    }

    /// Without the guard, this host's own addresses (loopback, 0.0.0.0) and link-local (a
    /// cloud's metadata service) stay refused: each range by a deny rule right before the
    /// first rule that serves without naming it — so the rules above that name part of it
    /// keep what they name, and no broad rule reaches it.
    fn refuse_local_ranges(&mut self, lines: &str) {
        let position = |rules: &[String], line: usize| {
            rules.iter().position(|rule| {
                rule.strip_prefix(&format!("# line {line}"))
                    .is_some_and(|rest| rest.starts_with(['\n', ':']))
            })
        };
        let mut at: Vec<(usize, &str)> = Vec::new();
        for range in ALWAYS_REFUSED {
            let Ok(refused) = range.parse::<socksgate_policy::Cidr>() else {
                continue;
            };
            let naming: Vec<usize> = self
                .private_passes
                .iter()
                .filter(|(_, blocks)| {
                    blocks
                        .iter()
                        .any(|block| block.covers(&refused) || refused.covers(block))
                })
                .filter_map(|(line, _)| position(&self.rules, *line))
                .collect();
            // Right before the first rule that serves without naming the range (it could
            // reach the range though it did not mean to): the rules naming part of it above
            // keep it, none below the deny does.
            let serves = |rule: &String| {
                rule.contains("action = \"allow\"") || rule.contains("action = \"route\"")
            };
            let before = (0..self.rules.len())
                .find(|index| serves(&self.rules[*index]) && !naming.contains(index))
                .unwrap_or(self.rules.len());
            at.push((before, range));
        }
        at.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
        let mut groups: Vec<(usize, Vec<&str>)> = Vec::new();
        for (index, range) in at {
            match groups.last_mut() {
                Some((last, ranges)) if *last == index => ranges.push(range),
                _ => groups.push((index, vec![range])),
            }
        }
        // From the last place to the first, so that earlier places stay where they were.
        for (index, mut ranges) in groups {
            ranges.sort_by_key(|range| ALWAYS_REFUSED.iter().position(|r| r == range));
            self.rules.insert(
                index,
                format!(
                    "# the private-destination guard is off (line {lines}): this host's own \
                     and link-local addresses stay refused\n[[rule]]\nto = {}\naction = \"deny\"\n",
                    list(&ranges)
                ),
            );
        }
    }

    fn route(&mut self, line: usize, body: &[(String, Vec<String>)]) {
        let name = format!("route{}", self.upstreams.len() + 1);
        let mut rule = format!(
            "# line {line}: Dante's route; decided before the pass rules, so a later block rule \
             does not refuse what it routes\n[[rule]]\n"
        );
        let mut via = None;
        let mut flavour = "socks5h";
        let mut private = Vec::new();
        for (key, values) in body {
            match key.as_str() {
                "from" | "to" => match address_match(values) {
                    Ok(Match { blocks, ports, .. }) => {
                        if key == "to" {
                            // A route to private space is served by Dante; the guard refuses
                            // private addresses routed or not.
                            private.extend(blocks.iter().filter_map(|block| {
                                match privacy(block) {
                                    Privacy::Private(cidr) => Some(cidr),
                                    _ => None,
                                }
                            }));
                        }
                        if !blocks.is_empty() {
                            let _ = writeln!(rule, "{key} = {}", list(&blocks));
                        }
                        if key == "to" && !ports.is_empty() {
                            let _ = writeln!(rule, "ports = {}", list(&ports));
                        }
                    }
                    Err(why) => return self.drop(line, "route", &why),
                },
                "via" => match endpoint(values) {
                    Ok((host, _)) if host == "direct" => {
                        return self.note(line, "route via direct: socksgate's default")
                    }
                    Ok((host, port)) => via = Some(format!("{host}:{port}")),
                    Err(why) => return self.drop(line, "route", &why),
                },
                "command" => {
                    let commands: Vec<&str> = values
                        .iter()
                        .filter_map(|value| match value.as_str() {
                            "connect" => Some("connect"),
                            "bind" => Some("bind"),
                            "udpassociate" => Some("udp"),
                            _ => None,
                        })
                        .collect();
                    let _ = writeln!(rule, "commands = {}", list(&commands));
                }
                "proxyprotocol" => {
                    if values.iter().all(|v| v == "socks_v4") {
                        flavour = "socks4a";
                    }
                }
                "protocol" | "method" | "socksmethod" => {}
                other => self.drop(
                    line,
                    &format!("{other}: {}", values.join(" ")),
                    "no equivalent in a route",
                ),
            }
        }
        let Some(via) = via else {
            return self.drop(line, "route", "no `via:`");
        };
        self.upstreams.push(format!(
            "[[upstream]]\nname = \"{name}\"\nchains = [[\"{flavour}://{via}\"]]\n"
        ));
        let _ = writeln!(rule, "action = \"route\"\nroute = \"{name}\"");
        if !private.is_empty() {
            self.private_passes.push((line, private));
        }
        self.route_rules.push(rule);
    }

    fn finish(mut self, source: &str) -> Conversion {
        let at = self.first_pass.unwrap_or(self.rules.len());
        let routes = std::mem::take(&mut self.route_rules);
        self.rules.splice(at..at, routes);
        // Dante blocks what no rule passes, rules or no rules; socksgate without rules
        // allows everything, so an empty rule list becomes an explicit refusal.
        if self.client_rules.is_empty() {
            self.client_rules.push(
                "# Dante refuses every client when no client rule passes it\n[[client_rule]]\naction = \"deny\"\n"
                    .to_owned(),
            );
        }
        if self.rules.is_empty() {
            self.rules.push(
                "# Dante refuses every request when no socks rule passes it\n[[rule]]\naction = \"deny\"\n"
                    .to_owned(),
            );
        }
        if !self.private_passes.is_empty() {
            let lines: Vec<String> = self
                .private_passes
                .iter()
                .map(|(line, _)| line.to_string())
                .collect();
            self.notes.push(format!(
                "line {} passes private networks, which Dante serves: \
                 deny_private_destinations = false keeps them reachable",
                lines.join(", ")
            ));
            self.settings
                .push("[policy]\ndeny_private_destinations = false".to_owned());
            self.refuse_local_ranges(&lines.join(", "));
        }
        let mut out = format!("# socksgate configuration converted from {source} (Dante)\n");
        for note in &self.notes {
            let _ = writeln!(out, "# {note}");
        }
        let methods = if self.methods.is_empty() {
            vec!["none"]
        } else {
            self.methods.clone()
        };
        if self.listeners.is_empty() {
            out.push_str("# no listener address converted: socksgate's loopback default applies\n");
        }
        for address in &self.listeners {
            let _ = writeln!(
                out,
                "\n[[listen]]\naddress = \"{address}\"\nmethods = {}",
                list(&methods)
            );
        }
        if self.listeners.is_empty() && methods != ["none"] {
            for address in ["127.0.0.1:1080", "[::1]:1080"] {
                let _ = writeln!(
                    out,
                    "\n[[listen]]\naddress = \"{address}\"\nmethods = {}",
                    list(&methods)
                );
            }
        }
        if methods.contains(&"password") {
            let auth = self
                .auth
                .unwrap_or_else(|| "pam_service = \"login\"".to_owned());
            let _ = writeln!(out, "\n[auth]\n{auth}");
        }
        // Settings of one table go together; a later one replaces an earlier one.
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for setting in &self.settings {
            let (table, line) = setting.split_once('\n').unwrap_or((setting, ""));
            let key = line.split(" = ").next().unwrap_or(line);
            match tables.iter_mut().find(|(name, _)| name == table) {
                Some((_, lines)) => {
                    lines.retain(|other| other.split(" = ").next() != Some(key));
                    lines.push(line.to_owned());
                }
                None => tables.push((table.to_owned(), vec![line.to_owned()])),
            }
        }
        for (table, lines) in tables {
            let _ = writeln!(out, "\n{table}\n{}", lines.join("\n"));
        }
        for upstream in &self.upstreams {
            let _ = write!(out, "\n{upstream}");
        }
        for rule in self.client_rules.iter().chain(&self.rules) {
            let _ = write!(out, "\n{rule}");
        }
        Conversion {
            output: out,
            dropped: self.dropped,
        }
    }
}

/// `ADDRESS port = N` (or `port N`).
fn endpoint(words: &[String]) -> Result<(String, u16), String> {
    let host = words.first().ok_or("no address")?.clone();
    let port = match words.get(1..).unwrap_or_default() {
        [] => 1080,
        [port, equals, value] if port == "port" && equals == "=" => service_port(value)?,
        [port, value] if port == "port" => service_port(value)?,
        other => return Err(format!("`{}` not understood", other.join(" "))),
    };
    Ok((host, port))
}

/// A port number or a service name Dante's examples use.
fn service_port(text: &str) -> Result<u16, String> {
    let known = [
        ("http", 80),
        ("https", 443),
        ("socks", 1080),
        ("ftp", 21),
        ("ssh", 22),
        ("smtp", 25),
        ("domain", 53),
    ];
    text.parse()
        .ok()
        .or_else(|| {
            known
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, port)| *port)
        })
        .ok_or_else(|| format!("unknown port {text}"))
}

/// An address and its optional port condition, as socksgate's rule lists.
struct Match {
    blocks: Vec<String>,
    ports: Vec<String>,
    notes: Vec<String>,
}

fn address_match(values: &[String]) -> Result<Match, String> {
    let (address, rest) = values.split_first().ok_or("no address")?;
    let mut notes = Vec::new();
    let blocks = match address.as_str() {
        "0/0" | "0.0.0.0/0" | "::/0" => Vec::new(),
        "lo" | "lo0" => {
            notes.push(format!(
                "{address} is the loopback interface: its addresses are used"
            ));
            vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
        }
        text if text.starts_with('.') => vec![format!("*{text}")],
        text if text.contains('/') => vec![text.to_owned()],
        text if text.parse::<std::net::IpAddr>().is_ok() => vec![text.to_owned()],
        text if text.contains('.') => vec![text.to_owned()],
        text => {
            return Err(format!(
                "{text} is an interface: name its addresses instead"
            ))
        }
    };
    let ports = match rest {
        [] => Vec::new(),
        [port, operator, value] if port == "port" => {
            let value = service_port(value)?;
            match operator.as_str() {
                "=" | "eq" => vec![value.to_string()],
                "le" => vec![format!("1-{value}")],
                "lt" => vec![format!("1-{}", value.saturating_sub(1))],
                "ge" => vec![format!("{value}-65535")],
                "gt" => vec![format!("{}-65535", value.saturating_add(1))],
                other => return Err(format!("port {other} has no equivalent")),
            }
        }
        [port, range] if port == "port" && range.contains('-') => vec![range.clone()],
        [port, value] if port == "port" => vec![service_port(value)?.to_string()],
        other => return Err(format!("`{}` not understood", other.join(" "))),
    };
    Ok(Match {
        blocks,
        ports,
        notes,
    })
}

/// This host's own addresses and link-local: refused whenever the conversion turns the
/// guard off (after any pass rule that names part of them).
const ALWAYS_REFUSED: [&str; 6] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "::/128",
    "::1/128",
    "169.254.0.0/16",
    "fe80::/10",
];

/// How much of a converted destination is private space.
enum Privacy {
    Private(socksgate_policy::Cidr),
    Partly,
    Public,
}

/// Whether a converted destination (a block, an address or a name) is private space.
fn privacy(destination: &str) -> Privacy {
    let block = match destination.parse::<std::net::IpAddr>() {
        Ok(ip) => socksgate_policy::Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 }),
        Err(_) => destination.parse::<socksgate_policy::Cidr>().ok(),
    };
    match block {
        Some(block) if block.is_private() => Privacy::Private(block),
        Some(block) if block.overlaps_private() => Privacy::Partly,
        _ => Privacy::Public,
    }
}

/// A TOML array of strings.
fn list(items: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("{:?}", item.as_ref()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Converts the text of a sockd.conf.
pub(crate) fn convert(text: &str, source: &str) -> Conversion {
    let mut converter = Converter::default();
    match statements(text) {
        Ok(statements) => {
            for statement in statements {
                match statement {
                    Statement::Setting { line, key, words } => {
                        converter.setting(line, &key, &words)
                    }
                    Statement::Block {
                        line,
                        kind,
                        action,
                        body,
                    } => {
                        converter.block(line, &kind, action.as_deref(), &body);
                    }
                }
            }
        }
        Err(why) => {
            converter.notes.push(why);
            converter.dropped += 1;
        }
    }
    converter.finish(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_keep_their_order_and_routes_go_before_the_first_pass() {
        let text = "internal: 10.0.0.1 port = 1080\nexternal: 192.0.2.1\nsocksmethod: username\n\
                    client pass { from: 10.0.0.0/8 to: 0/0 }\n\
                    socks block { from: 0/0 to: lo log: connect }\n\
                    socks pass { from: 10.0.0.0/8 to: .example.com port le 1023 command: connect bind log: connect }\n\
                    route { from: 0/0 to: 0/0 port = http via: up.example port = socks }\n";
        let converted = convert(text, "t.conf");
        assert_eq!(converted.dropped, 0, "{}", converted.output);
        let out = &converted.output;
        assert!(
            out.contains("address = \"10.0.0.1:1080\"\nmethods = [\"password\"]"),
            "{out}"
        );
        assert!(out.contains("[auth]\npam_service = \"login\""), "{out}");
        assert!(out.contains("to = [\"127.0.0.0/8\", \"::1/128\"]"), "{out}");
        assert!(out.contains("to = [\"*.example.com\"]\nports = [\"1-1023\"]\ncommands = [\"connect\", \"bind\"]"), "{out}");
        assert!(out.contains("source_address = \"192.0.2.1\""), "{out}");
        assert!(
            out.contains("chains = [[\"socks5h://up.example:1080\"]]"),
            "{out}"
        );
        let (block, route, pass) = (
            out.find("\"127.0.0.0/8\"").unwrap(),
            out.find("action = \"route\"").unwrap(),
            out.find("*.example.com").unwrap(),
        );
        assert!(block < route && route < pass, "{out}");
    }

    /// Issue #21: Dante has no private-destination guard; a pass rule to private space
    /// keeps it reachable in the conversion, which says so.
    #[test]
    fn a_pass_rule_to_private_networks_turns_the_guard_off_and_says_why() {
        let converted = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\n\
             socks pass { from: 0/0 to: 10.0.0.0/8 }\n",
            "sockd.conf",
        );
        let out = &converted.output;
        assert!(
            out.contains("[policy]\ndeny_private_destinations = false"),
            "{out}"
        );
        assert!(out.contains("line 4 passes private networks"), "{out}");
        // This host's own and link-local addresses stay refused, ahead of the pass rules.
        let refused = "to = [\"0.0.0.0/8\", \"127.0.0.0/8\", \"::/128\", \"::1/128\", \"169.254.0.0/16\", \"fe80::/10\"]\naction = \"deny\"";
        let at = out.find(refused).unwrap_or_else(|| panic!("{out}"));
        assert!(at < out.find("to = [\"10.0.0.0/8\"]").unwrap(), "{out}");
        // A pass rule naming part of a range keeps that part: the range is refused right
        // after it, before the rules that follow (here the metadata service, from one host
        // only); a rule dropped whole counts not.
        let partial = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\n\
             socks pass { from: 10.1.1.1/32 to: 169.254.1.1/32 }\n\
             socks pass { from: 0/0 to: 10.0.0.0/8 command: bindreply }\n\
             socks pass { from: 0/0 to: 0/0 }\n",
            "sockd.conf",
        );
        let out = &partial.output;
        let named = out
            .find("to = [\"169.254.1.1/32\"]")
            .unwrap_or_else(|| panic!("{out}"));
        let metadata = out
            .find("to = [\"169.254.0.0/16\"]")
            .unwrap_or_else(|| panic!("{out}"));
        let everyone = out.find("# line 6").unwrap_or_else(|| panic!("{out}"));
        assert!(named < metadata && metadata < everyone, "{out}");
        assert!(
            out.contains("line 4 passes") && !out.contains("line 4, 5"),
            "{out}"
        );
        // A broad pass rule above the one naming the metadata service: the refusal comes
        // before the broad one (in Dante the later rule was dead for what it shadowed).
        let broad_first = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\n\
             socks pass { from: 0/0 to: 0/0 }\n\
             socks pass { from: 10.1.1.1/32 to: 169.254.169.254/32 }\n",
            "sockd.conf",
        );
        let out = &broad_first.output;
        let metadata = out
            .find("\"169.254.0.0/16\"")
            .unwrap_or_else(|| panic!("{out}"));
        let everyone = out.find("# line 4").unwrap_or_else(|| panic!("{out}"));
        assert!(metadata < everyone, "{out}");
        // A route to private space is served by Dante too.
        let routed = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\n\
             route { from: 0/0 to: 10.20.0.0/16 via: 192.0.2.9 port = 1080 }\n\
             socks pass { from: 0/0 to: 0/0 }\n",
            "sockd.conf",
        );
        assert!(
            routed.output.contains("deny_private_destinations = false"),
            "{}",
            routed.output
        );
        // A block partly private is said to lose that part.
        let partly = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\nsocks pass { from: 0/0 to: 192.0.0.0/2 }\n",
            "sockd.conf",
        );
        assert!(
            partly.output.contains("192.0.0.0/2 is partly private"),
            "{}",
            partly.output
        );
        assert!(
            !partly.output.contains("deny_private_destinations"),
            "{}",
            partly.output
        );
        let public_only = convert(
            "internal: 0.0.0.0 port = 1080\nexternal: eth0\n\
             client pass { from: 0/0 to: 0/0 }\nsocks pass { from: 0/0 to: 0/0 }\n",
            "sockd.conf",
        );
        assert!(
            !public_only.output.contains("deny_private_destinations"),
            "{}",
            public_only.output
        );
    }

    #[test]
    fn without_rules_dante_refuses_and_so_does_the_conversion() {
        let converted = convert("logoutput: stderr\n", "t.conf");
        assert!(converted
            .output
            .contains("[[client_rule]]\naction = \"deny\""));
        assert!(converted.output.contains("[[rule]]\naction = \"deny\""));
        let converted = convert("socks pass { from: eth0 to: 0/0 }\nfoo: bar\n", "t.conf");
        assert_eq!(converted.dropped, 2, "{}", converted.output);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Words a sockd.conf is made of, so that arbitrary sequences reach deep into the parser.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("\n".to_owned()),
            Just("socks".to_owned()),
            Just("client".to_owned()),
            Just("route".to_owned()),
            Just("pass".to_owned()),
            Just("block".to_owned()),
            Just("from:".to_owned()),
            Just("to:".to_owned()),
            Just("via:".to_owned()),
            Just("port".to_owned()),
            Just("=".to_owned()),
            Just("le".to_owned()),
            Just("command:".to_owned()),
            Just("internal:".to_owned()),
            Just("0/0".to_owned()),
            Just("lo".to_owned()),
            Just(".example.com".to_owned()),
            "[a-z0-9./:#-]{0,12}",
        ]
    }

    proptest! {
        /// Whatever the text, the conversion ends, and every drop is counted.
        #[test]
        fn any_text_converts_without_panicking(words in proptest::collection::vec(word(), 0..60)) {
            let text = words.join(" ");
            let converted = convert(&text, "fuzz.conf");
            prop_assert!(converted.output.starts_with("# socksgate configuration"));
        }
    }
}
