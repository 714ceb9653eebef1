//! `adainf check`: static checks of a compiled script without running it: calls to module
//! functions that do not exist, and literal option maps with unknown keys or literal values of
//! the wrong kind. Every problem found is reported (Rhai's parser itself stops at the first
//! syntax error).

use rhai::{AST, ASTNode, Expr};

use super::api::{ApiEntry, MODULES};
use super::entry::schedule_opts;
use super::options::{Kind, unknown_key_message, wrong_kind_message};

fn literal_kind_ok(kind: Kind, e: &Expr) -> Option<(bool, &'static str)> {
    let (ok, name) = match e {
        Expr::IntegerConstant(..) => (
            matches!(kind, Kind::Int | Kind::IntOrAuto | Kind::Float),
            "integer",
        ),
        Expr::FloatConstant(..) => (kind == Kind::Float, "float"),
        Expr::StringConstant(s, _) if kind == Kind::IntOrAuto => (
            s.as_str() == super::options::AUTO,
            "string other than \"auto\"",
        ),
        Expr::StringConstant(..) => (matches!(kind, Kind::Str | Kind::Aug), "string"),
        Expr::BoolConstant(..) => (kind == Kind::Bool, "bool"),
        _ => return None,
    };
    Some((ok, name))
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

pub fn check_ast(ast: &AST, file: &str, api: &[ApiEntry]) -> Vec<String> {
    let mut problems = Vec::new();
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
        let Some(entry) = api.iter().find(|e| e.path == full) else {
            let known: Vec<&str> = api
                .iter()
                .filter(|e| e.path.starts_with(&format!("{module}::")))
                .map(|e| e.path)
                .collect();
            problems.push(format!(
                "{}: unknown function `{full}`; {module} has: {}",
                at(file, *pos),
                known.join(", ")
            ));
            return true;
        };
        for arg in call.args.iter() {
            if let Expr::Map(map, _) = arg {
                for (ident, value) in map.0.iter() {
                    let key = ident.name.as_str();
                    match entry.options.iter().find(|o| o.key == key) {
                        None => problems.push(format!(
                            "{}: {}",
                            at(file, ident.pos),
                            unknown_key_message(&full, key, entry.options)
                        )),
                        Some(o) => {
                            if let Some((false, got)) = literal_kind_ok(o.kind, value) {
                                problems.push(format!(
                                    "{}: {}",
                                    at(file, value.position()),
                                    wrong_kind_message(&full, key, o.kind, got)
                                ));
                            }
                            if o.kind == Kind::Schedule
                                && let Expr::Map(inner, _) = value
                            {
                                check_schedule(file, &full, key, &inner.0, &mut problems);
                            }
                        }
                    }
                }
            }
        }
        true
    });
    problems
}
