//! The standard script library (`stdlib/*.rhai`), compiled into the binary so an installed
//! `adainf` has it: `import "adainf" as ada;`, `import "params" as p;`, `import "sweep" as sweep;` and `import "schedules" as s;` work from any
//! script. Files next to the script or in `--lib` folders with the same name take precedence.

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

pub const SOURCES: [(&str, &str); 4] = [
    ("adainf", include_str!("../../../stdlib/adainf.rhai")),
    ("params", include_str!("../../../stdlib/params.rhai")),
    ("sweep", include_str!("../../../stdlib/sweep.rhai")),
    ("schedules", include_str!("../../../stdlib/schedules.rhai")),
];

pub struct EmbeddedStdlib;

impl ModuleResolver for EmbeddedStdlib {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let name = path.trim_end_matches(".rhai");
        let Some((_, source)) = SOURCES.iter().find(|(n, _)| *n == name) else {
            return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                path.to_string(),
                pos,
            )));
        };
        let mut ast = engine.compile(source).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                format!("stdlib/{name}.rhai"),
                e.into(),
                pos,
            ))
        })?;
        ast.set_source(format!("stdlib/{name}.rhai"));
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                format!("stdlib/{name}.rhai"),
                e,
                pos,
            ))
        })?;
        Ok(module.into())
    }
}

/// Whether `a` and `b` name the same existing file.
pub fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A folder's module resolver that never resolves to the running script itself, so a script
/// named like a library it imports (`examples/schedules.rhai`: `import "schedules"`) gets
/// the library instead of importing itself without end.
pub struct NotTheScript {
    /// The folder's resolver.
    pub files: rhai::module_resolvers::FileModuleResolver,
    /// The running script.
    pub script: std::path::PathBuf,
}

impl ModuleResolver for NotTheScript {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = self
            .files
            .base_path()
            .map(|dir| dir.join(format!("{}.rhai", path.trim_end_matches(".rhai"))));
        if file.is_some_and(|f| same_file(&f, &self.script)) {
            let name = path.trim_end_matches(".rhai");
            if !SOURCES.iter().any(|(n, _)| *n == name) {
                return Err(in_module(path, self_import_message(name), pos));
            }
            return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                path.to_string(),
                pos,
            )));
        }
        self.files.resolve(engine, source, path, pos)
    }
}

/// Stops an import cycle (`a` imports `b`, which imports `a`), which would otherwise import
/// without end until the stack overflows: it keeps the chain of modules being imported right
/// now and refuses an import already on it, naming the cycle.
pub struct NoCycles<R> {
    /// The resolver that finds modules.
    pub inner: R,
    /// The modules being imported now, outermost first.
    pub active: std::cell::RefCell<Vec<String>>,
}

impl<R: ModuleResolver> ModuleResolver for NoCycles<R> {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let name = path.trim_end_matches(".rhai").to_string();
        if let Some(cycle) = cycle_through(&self.active.borrow(), &name) {
            return Err(in_module(path, import_cycle_message(&cycle), pos));
        }
        self.active.borrow_mut().push(name);
        let module = self.inner.resolve(engine, source, path, pos);
        self.active.borrow_mut().pop();
        module
    }
}

/// The cycle that importing `name` closes, given the chain of imports in progress: from the
/// first `name` on the chain back to `name` (None: no cycle).
pub fn cycle_through(active: &[String], name: &str) -> Option<Vec<String>> {
    let start = active.iter().position(|n| n == name)?;
    let mut cycle = active[start..].to_vec();
    cycle.push(name.to_string());
    Some(cycle)
}

/// The message of an import cycle (`["a", "b", "a"]`), for `run` and `check` alike.
pub fn import_cycle_message(cycle: &[String]) -> String {
    format!(
        "import cycle: {}; modules cannot import each other in a circle: move what they share into a module that imports neither",
        cycle
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" imports ")
    )
}

/// The message of a script that imports itself (`run` and `check` alike).
pub fn self_import_message(name: &str) -> String {
    format!(
        "`import \"{name}\"` names this script itself; a script cannot import itself: move the functions it shares into a module of their own"
    )
}

/// An error of the import of `path` (a resolver may only return a module error).
fn in_module(path: &str, message: String, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorInModule(
        path.to_string(),
        Box::new(EvalAltResult::ErrorRuntime(message.into(), pos)),
        pos,
    ))
}
