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
            return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                path.to_string(),
                pos,
            )));
        }
        self.files.resolve(engine, source, path, pos)
    }
}
