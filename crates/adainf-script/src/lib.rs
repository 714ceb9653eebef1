//! The Rhai host: builds the script engine with the `data`, `aug`, `train`, `eval` and
//! `report` modules, runs or checks scripts, and turns every failure into one message with
//! `file:line:col`. Scripts only ever hold cheap handles (datasets, augmentations, finished
//! runs); burn modules stay inside the core.

pub mod api;
pub mod check;
mod entry;
pub mod memory;
mod modules;
pub mod options;
mod sized;
mod stdlib;

// The core's modules under this crate's root, so the host names them as `crate::data`, ….
use adainf_core::{
    augment, data, device, error, eval, generator, method, report, runs, theory, train,
};

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::tensor::Device;
use rhai::{Dynamic, Engine, EvalAltResult, Map, OptimizationLevel, ParseError, Position, Scope};

use crate::train::{CancelFlag, Progress};

/// Creates a progress sink for each run a script starts.
pub type ProgressFactory = Box<dyn Fn() -> Box<dyn Progress>>;

/// What scripts run against.
pub struct HostConfig {
    pub device: Device,
    pub device_name: String,
    pub runs_dir: PathBuf,
    /// Rhai operation budget: a runaway loop ends with an error instead of hanging.
    pub max_operations: u64,
    /// The script stops with an error once the process's live heap passes this many GiB
    /// (`memory`; needs the binary's counting allocator).
    pub max_memory_gib: u64,
    /// `adainf run SCRIPT -- key=value ...`: available to the script as the map `params`.
    pub params: Map,
    /// `--lib DIR`s searched for `import "name"` after the script's own folder.
    pub lib_dirs: Vec<PathBuf>,
    pub cancel: CancelFlag,
    /// Where runs are trained: in this process, in local workers or on Slurm.
    pub executor: crate::runs::Executor,
    /// Train runs whose earlier attempt failed again (`--retry-failed`).
    pub retry_failed: bool,
}

/// Shared state the registered functions close over.
pub(crate) struct HostState {
    pub device: Device,
    pub runs_dir: PathBuf,
    pub progress: ProgressFactory,
    pub cancel: CancelFlag,
    /// Folder of the running script: relative paths in scripts resolve against it.
    pub script_dir: RefCell<PathBuf>,
    /// Generated datasets by recipe, kept for the life of the host: `adainf watch` re-runs a
    /// script without rendering its synthetic data again.
    pub datasets: RefCell<std::collections::HashMap<String, crate::data::Dataset>>,
    pub executor: crate::runs::Executor,
    pub retry_failed: bool,
    /// The script thread's `memory::script_allocations` when the running script began: what
    /// it has allocated since is charged to its operation budget.
    pub copies_before_run: Rc<std::cell::Cell<u64>>,
}

impl HostState {
    /// The dataset made by `recipe`, built once per host.
    pub fn memo<E>(
        &self,
        recipe: String,
        build: impl FnOnce() -> Result<crate::data::Dataset, E>,
    ) -> Result<crate::data::Dataset, E> {
        if let Some(d) = self.datasets.borrow().get(&recipe) {
            return Ok(d.clone());
        }
        let d = build()?;
        self.datasets.borrow_mut().insert(recipe, d.clone());
        Ok(d)
    }

    /// A path from a script, relative to the script's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.script_dir.borrow().join(p)
        }
    }
}

pub struct Host {
    engine: Engine,
    state: Rc<HostState>,
    params: Map,
    lib_dirs: Vec<PathBuf>,
    /// The script being run: `import` never resolves to it (a script named like a library,
    /// e.g. `examples/schedules.rhai` importing "schedules", gets the library).
    script: PathBuf,
}

/// A script failure, already phrased for people.
#[derive(Debug)]
pub struct ScriptError {
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn at(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

/// `file:line:col: syntax error: ...`
pub fn format_parse_error(file: &str, err: &ParseError) -> String {
    format!("{}: syntax error: {}", at(file, err.1), err.0)
}

/// The innermost error of a chain of function-call errors, with the call sites on the way.
pub fn format_eval_error(file: &str, err: &EvalAltResult) -> String {
    format_eval_error_in(file, err, &|name| name.to_string())
}

/// `format_eval_error` where `module_file` names the file of a module as imported
/// (`import "sub/deep"`): positions inside a module are given in that module's file.
pub fn format_eval_error_in(
    file: &str,
    err: &EvalAltResult,
    module_file: &dyn Fn(&str) -> String,
) -> String {
    let mut calls = Vec::new();
    let mut e = err;
    let mut file = file.to_string();
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                calls.push(format!("in `{name}` called at {}", at(&file, *pos)));
                // A function defined in a module runs in that module's file.
                if !source.is_empty() {
                    file = module_file(source);
                }
                e = inner;
            }
            // An import the resolver refused (a cycle, the script itself): the error is the
            // import's own, at its position in the importing file.
            EvalAltResult::ErrorInModule(_, inner, pos) if matches!(&**inner, EvalAltResult::ErrorRuntime(_, p) if p == pos) =>
            {
                e = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                calls.push(format!(
                    "in module `{name}` imported at {}",
                    at(&file, *pos)
                ));
                file = module_file(name);
                e = inner;
            }
            _ => break,
        }
    }
    let reason = match e {
        EvalAltResult::ErrorRuntime(msg, _) => msg.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => OPERATION_BUDGET_SPENT.into(),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "function calls nest deeper than {MAX_CALL_LEVELS} levels (a recursion without end?)"
        ),
        EvalAltResult::ErrorTerminated(token, _) => match token.clone().into_string() {
            // The memory guard's token is its message.
            Ok(text) if text != "cancelled" => text,
            _ => "stopped".into(),
        },
        other => {
            let text = other.to_string();
            // Rhai appends " (line L, position C)"; the position is given in front instead.
            match text.rfind(" (line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    };
    let mut msg = format!("{}: {reason}", at(&file, e.position()));
    for c in calls.iter().rev() {
        msg.push_str(&format!("\n  {c}"));
    }
    msg
}

/// How deep script function calls may nest: about 9 kB of stack a level, well within the
/// 1 GiB stack scripts run on (110,000 levels overflowed it).
const MAX_CALL_LEVELS: usize = 10_000;

/// Why a script stopped at its operation budget (Rhai's own count, or with the values it copied).
const OPERATION_BUDGET_SPENT: &str = "the script exceeded its operation budget (a runaway loop, or nested data copied whole on each assignment?); raise it with --max-operations if the script is right";

impl Host {
    pub fn new(config: HostConfig, progress: ProgressFactory) -> Host {
        let state = Rc::new(HostState {
            device: config.device,
            runs_dir: config.runs_dir,
            progress,
            cancel: config.cancel,
            script_dir: RefCell::new(PathBuf::from(".")),
            datasets: RefCell::new(std::collections::HashMap::new()),
            executor: config.executor,
            retry_failed: config.retry_failed,
            copies_before_run: Rc::new(std::cell::Cell::new(0)),
        });
        let mut engine = Engine::new();
        engine.set_optimization_level(OptimizationLevel::None);
        engine.set_max_operations(config.max_operations);
        engine.set_max_call_levels(MAX_CALL_LEVELS);
        engine.set_max_expr_depths(128, 64);
        // No per-value size limits: Rhai re-measures a whole value after each change, which
        // makes growing data quadratic; the memory guard below bounds growth instead (`memory`).
        engine.set_max_string_size(0);
        engine.set_max_array_size(0);
        engine.set_max_map_size(0);
        // `eval` is a reserved word in Rhai; the script API uses it as a module name
        // (`eval::knn`), so the tokenizer hands it to the parser as a plain identifier.
        #[allow(deprecated)] // "volatile", not deprecated: see the method's note
        engine.on_parse_token(|token, _, _| match token {
            rhai::Token::Reserved(s) if s.as_str() == "eval" => rhai::Token::Identifier(s),
            other => other,
        });
        let cancel = state.cancel.clone();
        let max_memory = config.max_memory_gib;
        let max_operations = config.max_operations;
        let copies_before = state.copies_before_run.clone();
        engine.on_progress(move |operations| {
            // Each allocation the script made (copying values) counts as one operation too.
            let copies = memory::script_allocations().saturating_sub(copies_before.get());
            if cancel.is_cancelled() {
                Some(Dynamic::from("cancelled"))
            } else if operations.saturating_add(copies) > max_operations {
                Some(Dynamic::from(OPERATION_BUDGET_SPENT))
            } else if memory::over_limit(max_memory) {
                Some(Dynamic::from(memory::over_limit_message(max_memory)))
            } else {
                None
            }
        });
        sized::register(&mut engine, config.max_operations, config.max_memory_gib);
        modules::register_all(&mut engine, &state);
        Host {
            engine,
            state,
            params: config.params,
            lib_dirs: config.lib_dirs,
            script: PathBuf::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn prepare(&self, path: &Path) -> Result<(String, String), ScriptError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| ScriptError {
            message: format!("{file}: cannot read the script: {e}"),
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        *self.state.script_dir.borrow_mut() = dir;
        Ok((file, source))
    }

    /// `import "name"` looks next to the script, then in the `--lib` folders, then in the
    /// standard library compiled into the binary (`stdlib/`).
    fn set_resolver(&mut self) {
        let mut chain = rhai::module_resolvers::ModuleResolversCollection::new();
        let mut folders = vec![self.state.script_dir.borrow().clone()];
        folders.extend(self.lib_dirs.iter().cloned());
        for dir in folders {
            let mut r = rhai::module_resolvers::FileModuleResolver::new_with_path(dir);
            r.enable_cache(false);
            chain.push(stdlib::NotTheScript {
                files: r,
                script: self.script.clone(),
            });
        }
        chain.push(stdlib::EmbeddedStdlib);
        self.engine.set_module_resolver(stdlib::NoCycles {
            inner: chain,
            active: Default::default(),
        });
    }

    /// The folders whose `.rhai` files a script can import (for `adainf watch`): the script's,
    /// the `--lib` folders, and the folder of every module file it imports, directly or through
    /// other modules (`import "sub/deep"` lives in `sub/`), as the files are now.
    pub fn source_folders(&self, script: &Path) -> Vec<PathBuf> {
        let dir = script
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut out = vec![dir.clone()];
        out.extend(self.lib_dirs.iter().cloned());
        let saved = self.state.script_dir.replace(dir);
        let ast = std::fs::read_to_string(script)
            .ok()
            .and_then(|s| self.engine.compile(s).ok());
        if let Some(ast) = ast {
            for (_, file, _) in self.imported_modules(&ast) {
                if let Some(parent) = file.and_then(|f| f.parent().map(Path::to_path_buf))
                    && !out.contains(&parent)
                {
                    out.push(parent);
                }
            }
        }
        *self.state.script_dir.borrow_mut() = saved;
        out
    }

    /// The file `import "name"` loads: next to the script or in a `--lib` folder (None for the
    /// standard library or a module that is not found; the order of `set_resolver`).
    fn module_file(&self, name: &str) -> Option<PathBuf> {
        let file = format!("{}.rhai", name.trim_end_matches(".rhai"));
        let mut folders = vec![self.state.script_dir.borrow().clone()];
        folders.extend(self.lib_dirs.iter().cloned());
        folders
            .into_iter()
            .map(|dir| dir.join(&file))
            .find(|path| path.is_file() && !stdlib::same_file(path, &self.script))
    }

    /// How errors name the module `import "name"` loads: its file, else the standard
    /// library's file, else the name as written.
    fn module_display(&self, name: &str) -> String {
        let bare = name.trim_end_matches(".rhai");
        if let Some(path) = self.module_file(name) {
            path.display().to_string()
        } else if stdlib::SOURCES.iter().any(|(n, _)| *n == bare) {
            format!("stdlib/{bare}.rhai")
        } else {
            name.to_string()
        }
    }

    /// The source of the module `import "name"` loads: a file next to the script or in a
    /// `--lib` folder, else the standard library (the order of `set_resolver`).
    fn module_source(&self, name: &str) -> Option<String> {
        if let Some(path) = self.module_file(name) {
            return std::fs::read_to_string(path).ok();
        }
        let name = name.trim_end_matches(".rhai");
        stdlib::SOURCES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.to_string())
    }

    /// The module `import "name"` loads, compiled (None where it is missing or does not
    /// compile; its `import` reports why).
    fn compile_module(&self, name: &str) -> Option<rhai::AST> {
        self.module_source(name)
            .and_then(|source| self.engine.compile(&source).ok())
    }

    /// Every module the script imports, directly or through other modules, each once: its
    /// name as written, its file (None for the standard library or one not found) and its
    /// compiled AST (None where it cannot be read or compiled; its `import` reports why).
    fn imported_modules(
        &self,
        ast: &rhai::AST,
    ) -> Vec<(String, Option<PathBuf>, Option<rhai::AST>)> {
        let mut queue = imports(ast);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        while let Some((name, _)) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let module = self.compile_module(&name);
            if let Some(m) = &module {
                queue.extend(imports(m));
            }
            out.push((name.clone(), self.module_file(&name), module));
        }
        out
    }

    /// An import cycle among the modules the script imports (directly or through others), with
    /// the position of the script's import that leads into it.
    fn import_cycle(&self, ast: &rhai::AST) -> Option<(Vec<String>, Position)> {
        fn walk(
            host: &Host,
            ast: &rhai::AST,
            active: &mut Vec<String>,
            done: &mut std::collections::HashSet<String>,
        ) -> Option<Vec<String>> {
            for (name, _) in imports(ast) {
                if let Some(cycle) = stdlib::cycle_through(active, &name) {
                    return Some(cycle);
                }
                if !done.insert(name.clone()) {
                    continue;
                }
                if let Some(module) = host.compile_module(&name) {
                    active.push(name);
                    if let Some(cycle) = walk(host, &module, active, done) {
                        return Some(cycle);
                    }
                    active.pop();
                }
            }
            None
        }
        imports(ast).into_iter().find_map(|(name, pos)| {
            let module = self.compile_module(&name)?;
            let mut active = vec![name];
            walk(self, &module, &mut active, &mut Default::default()).map(|c| (c, pos))
        })
    }

    /// Makes the closures that imported modules create callable from the script: Rhai looks
    /// a closure's anonymous function up in the script's own functions, so the anonymous
    /// functions of every module the script imports (and they import) are added to them,
    /// read afresh from the files on every run (a watch re-run never sees a stale module).
    /// A module that cannot be read or compiled adds nothing; its `import` reports the error.
    fn link_module_closures(&self, ast: &mut rhai::AST) {
        for (_, _, module) in self.imported_modules(ast) {
            if let Some(module) = module {
                ast.combine(
                    module.clone_functions_only_filtered(|_, _, _, name, _| {
                        name.starts_with("anon$")
                    }),
                );
            }
        }
    }

    /// Compiles and runs a script file.
    pub fn run_file(&mut self, path: &Path) -> Result<(), ScriptError> {
        let (file, source) = self.prepare(path)?;
        self.script = path.to_path_buf();
        self.set_resolver();
        let mut ast = self.engine.compile(&source).map_err(|e| ScriptError {
            message: format_parse_error(&file, &e),
        })?;
        self.link_module_closures(&mut ast);
        let mut scope = Scope::new();
        scope.push_constant("params", self.params.clone());
        self.state
            .copies_before_run
            .set(memory::script_allocations());
        self.engine
            .run_ast_with_scope(&mut scope, &ast)
            .map_err(|e| ScriptError {
                message: format_eval_error_in(&file, &e, &|name| self.module_display(name)),
            })
    }

    /// Compiles a script and checks it statically; returns every problem found.
    pub fn check_file(&mut self, path: &Path) -> Vec<String> {
        let (file, source) = match self.prepare(path) {
            Ok(x) => x,
            Err(e) => return vec![e.message],
        };
        let ast = match self.engine.compile(&source) {
            Err(e) => return vec![format_parse_error(&file, &e)],
            Ok(ast) => ast,
        };
        self.script = path.to_path_buf();
        self.set_resolver();
        let mut problems = Vec::new();
        // Undefined variables: Rhai's strict mode stops at the first; each one found is then
        // defined in the scope and the script compiled again, so every one is reported.
        let mut scope = Scope::new();
        scope.push_constant("params", self.params.clone());
        let mut defined: Option<Vec<String>> = None;
        let mut reported = std::collections::HashSet::new();
        self.engine.set_strict_variables(true);
        for _ in 0..100 {
            let Err(e) = self.engine.compile_with_scope(&scope, &source) else {
                break;
            };
            let rhai::ParseErrorType::VariableUndefined(name) = &*e.0 else {
                problems.push(format!("{}: {}", at(&file, e.1), e.0));
                break;
            };
            // A name the scope cannot define (one used inside a `fn`) is reported once.
            if !reported.insert((name.clone(), e.1)) {
                break;
            }
            let defined = defined.get_or_insert_with(|| {
                let mut names = vec!["params".to_string()];
                ast.walk(&mut |path: &[rhai::ASTNode]| {
                    if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Var(x, ..))) = path.last() {
                        names.push(x.0.name.to_string());
                    }
                    true
                });
                names
            });
            problems.push(format!(
                "{}: undefined variable `{name}`{}; define it with `let {name} = ...;` before this line",
                at(&file, e.1),
                check::did_you_mean(name, defined.iter().map(String::as_str))
            ));
            scope.push_dynamic(name.clone(), Dynamic::UNIT);
        }
        self.engine.set_strict_variables(false);
        if let Some((cycle, pos)) = self.import_cycle(&ast) {
            problems.push(format!(
                "{}: {}",
                at(&file, pos),
                stdlib::import_cycle_message(&cycle)
            ));
        }
        let mut known = check::Known {
            arities: check::Known::arities_from_signatures(&self.engine.gen_fn_signatures(false)),
            ..Default::default()
        };
        for (name, pos) in imports(&ast) {
            let bare = name.trim_end_matches(".rhai");
            let own_folder = self.state.script_dir.borrow().join(format!("{bare}.rhai"));
            if stdlib::same_file(&own_folder, &self.script) && self.module_source(&name).is_none() {
                problems.push(format!(
                    "{}: {}",
                    at(&file, pos),
                    stdlib::self_import_message(bare)
                ));
                known.modules.insert(name, None);
                continue;
            }
            // A module that exists but does not compile is not checked against (its `import`
            // reports the error when the script runs).
            match self.module_source(&name) {
                None => {
                    known.missing.insert(name.clone());
                    known.modules.insert(name, None);
                }
                Some(source) => {
                    known
                        .modules
                        .insert(name, self.engine.compile(&source).ok());
                }
            }
        }
        let mut folders = vec![self.state.script_dir.borrow().clone()];
        folders.extend(self.lib_dirs.iter().cloned());
        for dir in folders {
            if let Ok(entries) = std::fs::read_dir(dir) {
                known.importable.extend(entries.filter_map(|e| {
                    let p = e.ok()?.path();
                    if p.extension()? != "rhai" {
                        return None;
                    }
                    Some(p.file_stem()?.to_string_lossy().into_owned())
                }));
            }
        }
        known
            .importable
            .extend(stdlib::SOURCES.iter().map(|(n, _)| n.to_string()));
        problems.extend(check::check_script(&ast, &file, &api::catalogue(), &known));
        problems
    }
}

/// The `import "..."` statements of a script with literal names: the name and its position.
fn imports(ast: &rhai::AST) -> Vec<(String, Position)> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, pos))) = path.last()
            && let rhai::Expr::StringConstant(name, _) = &x.0
        {
            out.push((name.to_string(), *pos));
        }
        true
    });
    out
}

#[cfg(test)]
mod tests;
