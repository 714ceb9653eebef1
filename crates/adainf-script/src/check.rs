//! `adainf check`: static checks of a compiled script without running it: calls to module
//! functions that do not exist or get the wrong number of arguments (host modules and imported
//! script modules), imports that find no file, and option maps (literal, held in a variable
//! defined once by a literal, merged with `+`, or the items of a batch's `[opts, ...]`) with
//! unknown keys, literal values of the wrong kind, or literal values the call would refuse (the
//! same checks: `options::check`, and each function's data-free check of its options,
//! `options::Typed::check`: they parse into its struct, and its ranges, never a rule that reads
//! an option the checker cannot see).
//! Every problem found is reported (Rhai's parser itself stops at the first syntax error).

use std::collections::HashMap;

use rhai::{AST, ASTNode, Dynamic, Expr, Map, Stmt};

use super::api::{ApiEntry, MODULES};
use super::entry::schedule_opts;
use super::options::{Kind, check, fits, type_name, unknown_key_message, wrong_kind_message};

/// Whether the literal `e` fits `kind` (`options::fits` on the value it stands for), and its
/// type's name; `None` where `e` is no literal.
fn literal_kind_ok(kind: Kind, e: &Expr) -> Option<(bool, String)> {
    let v = literal(e)?;
    Some((fits(kind, &v), type_name(&v)))
}

fn at(file: &str, pos: rhai::Position) -> String {
    format!(
        "{file}:{}:{}",
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    )
}

/// The keys of a literal schedule map, and its literal values (numbers or functions of t).
fn check_schedule(
    file: &str,
    function: &str,
    option: &str,
    map: &[(rhai::Ident, Expr)],
    problems: &mut Vec<String>,
) {
    let known = schedule_opts();
    for (ident, value) in map.iter() {
        let key = ident.name.as_str();
        if !known.iter().any(|o| o.key == key) {
            problems.push(format!(
                "{}: {}",
                at(file, ident.pos),
                unknown_key_message(&format!("`{option}` of {function}"), key, &known)
            ));
        } else if let Some((false, got)) = literal_kind_ok(Kind::Float, value) {
            problems.push(format!(
                "{}: option `{option}.{key}` of {function} must be a number or a function of t (|t| ... or Fn(\"name\")), got {got}",
                at(file, value.position())
            ));
        }
    }
}

/// What the checker knows beyond the script: the host modules' functions and the modules
/// the script imports.
#[derive(Default)]
pub struct Known {
    /// `module::name` of every host-module function → the argument counts it takes.
    pub arities: HashMap<String, Vec<usize>>,
    /// Each `import "name"` → the module's AST (None where it is missing or does not compile).
    pub modules: HashMap<String, Option<AST>>,
    /// The imports no file or stdlib module has.
    pub missing: std::collections::HashSet<String>,
    /// Names `import` could find (files next to the script, in `--lib` folders, the stdlib),
    /// for did-you-mean.
    pub importable: Vec<String>,
}

impl Known {
    /// Arities from Rhai's signatures (`module::name(a: A, b: B) -> R`).
    pub fn arities_from_signatures(signatures: &[String]) -> HashMap<String, Vec<usize>> {
        let mut out: HashMap<String, Vec<usize>> = HashMap::new();
        for sig in signatures {
            let Some((name, rest)) = sig.split_once('(') else {
                continue;
            };
            if !MODULES.iter().any(|m| name.starts_with(&format!("{m}::"))) {
                continue;
            }
            let params = rest.split(')').next().unwrap_or("").trim();
            let n = if params.is_empty() {
                0
            } else {
                params.split(", ").count()
            };
            out.entry(name.to_string()).or_default().push(n);
        }
        out
    }
}

/// ` (did you mean `x`?)` for the candidate closest to `word` (within 2 edits), else empty.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .filter(|c| strsim::levenshtein(word, c) <= 2)
        .min_by_key(|c| strsim::levenshtein(word, c))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn arity_text(counts: &[usize]) -> String {
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let words: Vec<String> = counts.iter().map(usize::to_string).collect();
    let n = words.join(" or ");
    format!("{n} argument{}", if counts == [1] { "" } else { "s" })
}

/// A literal value as the script value it stands for.
fn literal(e: &Expr) -> Option<Dynamic> {
    Some(match e {
        Expr::IntegerConstant(i, _) => Dynamic::from(*i),
        Expr::FloatConstant(f, _) => Dynamic::from(**f),
        Expr::StringConstant(s, _) => Dynamic::from(s.clone()),
        Expr::BoolConstant(b, _) => Dynamic::from(*b),
        // An array of literals (`[0.5, 1]`), as written or as the optimiser folded it.
        Expr::Array(items, _) => {
            Dynamic::from_array(items.iter().map(literal).collect::<Option<_>>()?)
        }
        Expr::DynamicConstant(d, _) if d.is_array() => (**d).clone(),
        _ => return None,
    })
}

/// The map literals bound by `let name = #{...}` to a variable defined exactly once.
fn map_variables(ast: &AST) -> HashMap<String, Expr> {
    let mut defs: HashMap<String, (usize, Option<Expr>)> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Var(x, _, _))) = path.last() {
            let e = defs.entry(x.0.name.to_string()).or_insert((0, None));
            e.0 += 1;
            e.1 = matches!(x.1, Expr::Map(..)).then(|| x.1.clone());
        }
        true
    });
    defs.into_iter()
        .filter_map(|(k, (n, e))| (n == 1).then_some(e).flatten().map(|e| (k, e)))
        .collect()
}

/// Keys set on a variable after it was made, `name.key = value` or `name["key"] = value`: per
/// variable, each key with its position and value.
fn assigned_keys(ast: &AST) -> HashMap<String, Vec<(String, rhai::Position, Expr)>> {
    let mut keys: HashMap<String, Vec<(String, rhai::Position, Expr)>> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Assignment(x))) = path.last()
            && let Expr::Dot(target, _, _) | Expr::Index(target, _, _) = &x.1.lhs
            && let Expr::Variable(var, ..) = &target.lhs
        {
            let key = match &target.rhs {
                Expr::Property(p, pos) => Some((p.2.to_string(), *pos)),
                Expr::StringConstant(k, pos) if matches!(x.1.lhs, Expr::Index(..)) => {
                    Some((k.to_string(), *pos))
                }
                _ => None,
            };
            if let Some((key, pos)) = key {
                let value = x.1.rhs.clone();
                keys.entry(var.1.to_string())
                    .or_default()
                    .push((key, pos, value));
            }
        }
        true
    });
    keys
}

/// Whether `a` comes before `b` in the script.
fn before(a: rhai::Position, b: rhai::Position) -> bool {
    (a.line(), a.position()) < (b.line(), b.position())
}

pub fn check_ast(ast: &AST, file: &str, api: &[ApiEntry]) -> Vec<String> {
    check_script(ast, file, api, &Known::default())
}

/// Imports that find nothing, and calls to an imported module's functions that it lacks or
/// that get the wrong number of arguments.
fn check_imports(ast: &AST, file: &str, known: &Known, problems: &mut Vec<String>) {
    let mut aliases: HashMap<String, String> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = path.last()
            && let Expr::StringConstant(name, _) = &x.0
        {
            aliases.insert(x.1.name.to_string(), name.to_string());
            if known.missing.contains(name.as_str()) {
                problems.push(format!(
                    "{}: module `{name}` not found: no {name}.rhai next to the script or in a --lib folder, and no standard module of that name{}; standard modules: {}",
                    at(file, *pos),
                    did_you_mean(name, known.importable.iter().map(String::as_str)),
                    crate::stdlib::SOURCES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        true
    });
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos))) = path.last() else {
            return true;
        };
        let namespace = call.namespace.to_string();
        let alias = namespace.trim_end_matches("::");
        let Some(Some(module)) = aliases.get(alias).and_then(|m| known.modules.get(m)) else {
            return true;
        };
        let fns: Vec<(String, usize)> = module
            .iter_functions()
            .filter(|f| !f.name.starts_with("anon$") && f.access != rhai::FnAccess::Private)
            .map(|f| (f.name.to_string(), f.params.len()))
            .collect();
        let name = call.name.as_str();
        let counts: Vec<usize> = fns.iter().filter(|(n, _)| n == name).map(|(_, c)| *c).collect();
        let module_name = &aliases[alias];
        if counts.is_empty() {
            let mut names: Vec<&str> = fns.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            problems.push(format!(
                "{}: unknown function `{alias}::{name}`: module `{module_name}` has no function `{name}`{}; it has: {}",
                at(file, *pos),
                did_you_mean(name, names.iter().copied()),
                names.join(", ")
            ));
        } else if !counts.contains(&call.args.len()) {
            problems.push(format!(
                "{}: `{alias}::{name}` takes {}, given {}",
                at(file, *pos),
                arity_text(&counts),
                call.args.len()
            ));
        }
        true
    });
}

/// The keys a script gives an option map, as the checker sees them: each key with its place
/// and value, in the order they are set (a later setting wins), and whether part of the map is
/// out of sight (a variable or call whose keys the checker cannot know).
#[derive(Default)]
struct OptionMap<'a> {
    keys: Vec<(&'a str, rhai::Position, &'a Expr)>,
    opaque: bool,
}

/// Collects the option map `e` stands for into `out`: a map literal; a variable defined once by
/// a map literal, with the keys set on it before the call at `call`; `a + b` (Rhai's merge:
/// `b`'s keys over `a`'s), where a side out of sight makes the map opaque. False where `e` is
/// no option map the checker can read at all.
fn resolve<'a>(
    e: &'a Expr,
    variables: &'a HashMap<String, Expr>,
    assigned: &'a HashMap<String, Vec<(String, rhai::Position, Expr)>>,
    call: rhai::Position,
    out: &mut OptionMap<'a>,
) -> bool {
    match e {
        Expr::Map(map, _) => {
            out.keys.extend(
                map.0
                    .iter()
                    .map(|(ident, value)| (ident.name.as_str(), ident.pos, value)),
            );
            true
        }
        Expr::Variable(x, ..) => {
            let Some(literal) = variables.get(x.1.as_str()) else {
                return false;
            };
            resolve(literal, variables, assigned, call, out);
            out.keys.extend(
                assigned
                    .get(x.1.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|(_, p, _)| before(*p, call))
                    .map(|(k, p, v)| (k.as_str(), *p, v)),
            );
            true
        }
        Expr::FnCall(f, _) if f.name == "+" && f.args.len() == 2 && f.namespace.is_empty() => {
            let mut readable = false;
            for side in f.args.iter() {
                if resolve(side, variables, assigned, call, out) {
                    readable = true;
                } else {
                    out.opaque = true;
                }
            }
            readable
        }
        _ => false,
    }
}

/// The checks of one option map of a call to `full`: unknown keys, literal values of the wrong
/// kind or refused by the option check, schedules, then the function's own data-free check of
/// the literal values (`Typed::check`), each placed at the value it names.
fn check_option_map(
    file: &str,
    full: &str,
    entry: &ApiEntry,
    map: &OptionMap,
    at_map: rhai::Position,
    problems: &mut Vec<String>,
) {
    let options = entry.options();
    let mut literals = Map::new();
    // Options of the struct set to a value that is not a literal (a variable, a call), or all
    // of them where part of the map is out of sight: the call's own checks cannot know them.
    let mut unknown: Vec<&str> = Vec::new();
    if map.opaque {
        unknown.extend(
            options
                .iter()
                .filter(|o| !o.kind.is_handle())
                .map(|o| o.key),
        );
    }
    for &(key, key_pos, value) in &map.keys {
        match options.iter().find(|o| o.key == key) {
            None => problems.push(format!(
                "{}: {}",
                at(file, key_pos),
                unknown_key_message(full, key, &options)
            )),
            Some(o) => {
                // The last setting of a key is the one the call gets.
                literals.remove(key);
                if !map.opaque {
                    unknown.retain(|k| *k != key);
                    if literal(value).is_none() && !o.kind.is_handle() {
                        unknown.push(o.key);
                    }
                }
                if let Some((false, got)) = literal_kind_ok(o.kind, value) {
                    problems.push(format!(
                        "{}: {}",
                        at(file, value.position()),
                        wrong_kind_message(full, key, o.kind, &got)
                    ));
                } else if let Some(v) = literal(value) {
                    // The value checks the call runs (negative counts, NaN).
                    let one: Map = [(key.into(), v.clone())].into_iter().collect();
                    match check(full, &one, &options) {
                        Err(e) => problems.push(format!("{}: {e}", at(file, value.position()))),
                        Ok(()) => {
                            literals.insert(key.into(), v);
                        }
                    }
                }
                if o.kind == Kind::Schedule
                    && let Expr::Map(inner, _) = value
                {
                    check_schedule(file, full, key, &inner.0, problems);
                }
            }
        }
    }
    // The call's own checks of the literal values (ranges, names), placed at the value they
    // name (the last setting of that key, the one the call gets).
    if let Some(Err(e)) = entry.typed.map(|t| (t.check)(full, &literals, &unknown)) {
        let place = map
            .keys
            .iter()
            .rev()
            .find(|(key, ..)| e.contains(&format!("`{key}`")))
            .map_or(at_map, |(_, _, v)| v.position());
        problems.push(format!("{}: {e} (in {full})", at(file, place)));
    }
}

/// Every static check of a compiled script (see the top of this file).
pub fn check_script(ast: &AST, file: &str, api: &[ApiEntry], known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    check_imports(ast, file, known, &mut problems);
    let variables = map_variables(ast);
    let assigned = assigned_keys(ast);
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::FnCall(call, pos))) = path.last() else {
            return true;
        };
        let namespace = call.namespace.to_string();
        let module = namespace.trim_end_matches("::");
        if !MODULES.contains(&module) {
            return true;
        }
        let full = format!("{module}::{}", call.name);
        if let Some(counts) = known.arities.get(&full)
            && !counts.contains(&call.args.len())
        {
            problems.push(format!(
                "{}: `{full}` takes {}, given {}",
                at(file, *pos),
                arity_text(counts),
                call.args.len()
            ));
            return true;
        }
        let full = format!("{module}::{}", call.name);
        let Some(entry) = api.iter().find(|e| e.path == full) else {
            let known: Vec<&str> = api
                .iter()
                .filter(|e| e.path.starts_with(&format!("{module}::")))
                .map(|e| e.path)
                .collect();
            problems.push(format!(
                "{}: unknown function `{full}`{}; {module} has: {}",
                at(file, *pos),
                did_you_mean(&full, known.iter().copied()),
                known.join(", ")
            ));
            return true;
        };
        // A function of `[opts, ...]` (a batch) takes an array of option maps.
        let batch = entry.signature.contains("[opts");
        for arg in call.args.iter() {
            let items: Vec<&Expr> = match arg {
                Expr::Array(items, _) if batch => items.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let mut resolved = OptionMap::default();
                if resolve(item, &variables, &assigned, *pos, &mut resolved) {
                    check_option_map(
                        file,
                        &full,
                        entry,
                        &resolved,
                        item.position(),
                        &mut problems,
                    );
                }
            }
        }
        true
    });
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arities_come_from_the_signatures_of_host_modules_only() {
        let sigs = [
            "train::pretrain(opts: Map) -> Run".to_string(),
            "train::defaults() -> Map".to_string(),
            "train::defaults(method: &str) -> Map".to_string(),
            "data::save_npz(d: Dataset, path: &str) -> ()".to_string(),
            "sqrt(x: f64) -> f64".to_string(),
        ];
        let a = Known::arities_from_signatures(&sigs);
        assert_eq!(a["train::pretrain"], vec![1]);
        let mut d = a["train::defaults"].clone();
        d.sort_unstable();
        assert_eq!(d, vec![0, 1]);
        assert_eq!(a["data::save_npz"], vec![2]);
        assert!(!a.contains_key("sqrt"));
        assert_eq!(arity_text(&[1]), "1 argument");
        assert_eq!(arity_text(&[1, 0]), "0 or 1 arguments");
    }
}
