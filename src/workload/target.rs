//! What `clab workload` calls: a function in a Python file, and the arguments of one typical
//! call, checked before any interpreter is started.

use std::fmt;
use std::path::PathBuf;

/// `PATH.py:FUNCTION` with its arguments, each a Python literal (or else a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub function: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not PATH.py:FUNCTION")]
    Shape(String),
    #[error("{0} is not a .py file")]
    NotPython(String),
    #[error("{0}: no such file")]
    Missing(String),
    #[error(
        "{0:?} cannot be imported as a module: its name must be a Python identifier (letters, digits, _)"
    )]
    ModuleName(String),
    #[error("{0:?} is not a Python function name")]
    FunctionName(String),
}

fn identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Target {
    /// Parses `PATH.py:FUNCTION`; the file must exist, so a typo is one line here rather than
    /// one per interpreter.
    pub fn parse(spec: &str, args: Vec<String>) -> Result<Target, TargetError> {
        let Some((path, function)) = spec.rsplit_once(':') else {
            return Err(TargetError::Shape(spec.into()));
        };
        if path.is_empty() || function.is_empty() {
            return Err(TargetError::Shape(spec.into()));
        }
        let path = PathBuf::from(path);
        let stem = match (path.extension(), path.file_stem()) {
            (Some(extension), Some(stem)) if extension == "py" => stem.to_string_lossy(),
            _ => return Err(TargetError::NotPython(path.display().to_string())),
        };
        if !identifier(&stem) {
            return Err(TargetError::ModuleName(stem.into_owned()));
        }
        if !identifier(function) {
            return Err(TargetError::FunctionName(function.into()));
        }
        if !path.is_file() {
            return Err(TargetError::Missing(path.display().to_string()));
        }
        Ok(Target {
            path,
            function: function.into(),
            args,
        })
    }

    /// The arguments `clab_workload.py` takes for this target.
    pub fn script_args(&self) -> Vec<String> {
        let mut args = vec![self.to_string()];
        for arg in &self.args {
            args.push("--arg".into());
            args.push(arg.clone());
        }
        args
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_an_existing_python_file_and_a_function() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("handler.py");
        std::fs::write(&file, "def handle(n):\n    return n\n").unwrap();
        let spec = format!("{}:handle", file.display());
        let target = Target::parse(&spec, vec!["3".into()]).unwrap();
        assert_eq!(target.function, "handle");
        assert_eq!(target.script_args(), [spec.as_str(), "--arg", "3"]);
        for (spec, error) in [
            (
                "handler.py".to_owned(),
                TargetError::Shape("handler.py".into()),
            ),
            (
                format!("{}:", file.display()),
                TargetError::Shape(format!("{}:", file.display())),
            ),
            (
                "handler.txt:f".into(),
                TargetError::NotPython("handler.txt".into()),
            ),
            (
                "my-handler.py:f".into(),
                TargetError::ModuleName("my-handler".into()),
            ),
            (
                format!("{}:2f", file.display()),
                TargetError::FunctionName("2f".into()),
            ),
            (
                "nowhere.py:f".into(),
                TargetError::Missing("nowhere.py".into()),
            ),
        ] {
            assert_eq!(Target::parse(&spec, vec![]), Err(error), "{spec}");
        }
    }
}
