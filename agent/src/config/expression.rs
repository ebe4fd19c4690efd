//! `spec.kubelet.maxPodsExpression`: a CEL expression over nodeadm's three int variables,
//! compiled and type-checked here, where `config check` can reach it; compute evaluates the
//! compiled program for the instance type (`compute::max_pods`).
//!
//! The cel crate parses and evaluates but has no type checker, so the check is here: the
//! expression's type is inferred as cel-go's checker (nodeadm's) would, over the variables
//! declared as `int`; it must be an int (or uint). Input is bounded before parsing: at most
//! [`MAX_EXPRESSION_CHARS`] characters, which also bounds the syntax tree's depth.

use std::fmt;

use cel::common::ast::{Expr, LiteralValue, operators};

/// The variables an expression may use, all ints: the default network card's ENIs, IPv4
/// addresses per ENI, and the standard secondary-IP max pods.
pub const VARIABLES: [&str; 3] = ["default_enis", "ips_per_eni", "max_pods"];
/// The longest expression accepted (a formula is a few dozen characters). It also bounds the
/// depth of the syntax tree (`1+1+...` nests one level per operator), which the parser, the
/// check and the evaluator walk recursively.
pub const MAX_EXPRESSION_CHARS: usize = 256;
/// The deepest nesting of parentheses and brackets accepted.
pub const MAX_EXPRESSION_DEPTH: usize = 32;
/// The deepest syntax tree accepted: the evaluator recurses once per level, on whatever
/// thread evaluates (a 2 MiB tokio worker).
pub const MAX_TREE_DEPTH: usize = 32;
/// The stack of the thread that parses: the cel parser recurses through every precedence
/// level for each parenthesis.
const COMPILE_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "maxPodsExpression {} is not a valid CEL expression: {reason}; it may use the int variables default_enis, ips_per_eni and max_pods and must yield an int",
    crate::model::text::echo(expression)
)]
pub struct ExpressionError {
    /// The expression as written.
    pub expression: String,
    /// What is wrong.
    pub reason: String,
}

/// A compiled, type-checked `maxPodsExpression`.
pub struct MaxPodsExpression {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for MaxPodsExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MaxPodsExpression")
            .field(&self.source)
            .finish()
    }
}

impl MaxPodsExpression {
    /// Bounds, compiles and type-checks the expression (`compute` wraps this as `parse`,
    /// with its own error type).
    pub fn compile(source: &str) -> Result<Self, ExpressionError> {
        let fail = |reason: String| ExpressionError {
            expression: source.to_owned(),
            reason,
        };
        if source.trim().is_empty() {
            return Err(fail("it is empty".into()));
        }
        let chars = source.chars().count();
        if chars > MAX_EXPRESSION_CHARS {
            return Err(fail(format!(
                "it is {chars} characters long, more than the limit of {MAX_EXPRESSION_CHARS}"
            )));
        }
        if nesting(source) > MAX_EXPRESSION_DEPTH {
            return Err(fail(format!(
                "parentheses and brackets nest more than {MAX_EXPRESSION_DEPTH} deep (the limit)"
            )));
        }
        let owned = source.to_owned();
        let compiler = std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn(move || compile_and_check(&owned))
            .map_err(|e| fail(format!("cannot start the compiler thread ({e})")))?;
        let program = compiler
            .join()
            .map_err(|_| fail("the CEL parser failed on it".into()))?
            .map_err(fail)?;
        Ok(MaxPodsExpression {
            source: source.to_owned(),
            program,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled program (compute evaluates it).
    pub fn program(&self) -> &cel::Program {
        &self.program
    }
}

/// The deepest nesting of `(`, `[` and `{` outside string literals.
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in source.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '"' | '\'' => quote = Some(ch),
                '(' | '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// Compiles `source` and checks its type (on the compiler thread).
fn compile_and_check(source: &str) -> Result<cel::Program, String> {
    let program = cel::Program::compile(source).map_err(|e| {
        // The parser repeats the expression under each error; its first error line says it.
        let text = e.to_string();
        let first = text
            .lines()
            .find(|l| l.starts_with("ERROR:"))
            .unwrap_or(&text)
            .trim_start_matches("ERROR: <input>:");
        format!("at {}", crate::model::text::shorten_spans(first))
    })?;
    match type_of(&program.expression().expr, &mut Vec::new(), 0)? {
        Ty::Int | Ty::UInt | Ty::Dyn => Ok(program),
        other => Err(format!("it yields a {other}, but maxPods needs an int")),
    }
}

/// CEL types as far as the check needs them; `Dyn` is what cannot be known statically
/// (list elements, map values, macro results), accepted like cel-go accepts `dyn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    UInt,
    Double,
    Bool,
    String,
    Bytes,
    Null,
    List,
    Map,
    Dyn,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Int => "int",
            Ty::UInt => "uint",
            Ty::Double => "double",
            Ty::Bool => "bool",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Dyn => "dyn",
        })
    }
}

fn numeric(t: Ty) -> bool {
    matches!(t, Ty::Int | Ty::UInt | Ty::Double)
}

fn no_overload(op: &str, args: &[Ty]) -> String {
    let shown = op.trim_matches('_').replace('_', " ");
    let types = args
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("no operator or function `{shown}` for ({types})")
}

/// The static type of `expr` at `depth` in the tree; `bound` holds the comprehension
/// variables in scope.
fn type_of(expr: &Expr, bound: &mut Vec<String>, depth: usize) -> Result<Ty, String> {
    if depth > MAX_TREE_DEPTH {
        return Err(format!(
            "it nests more than {MAX_TREE_DEPTH} operations deep (the limit); split the formula with parentheses or simplify it"
        ));
    }
    let depth = depth + 1;
    Ok(match expr {
        Expr::Literal(l) => match l {
            LiteralValue::Boolean(_) => Ty::Bool,
            LiteralValue::Bytes(_) => Ty::Bytes,
            LiteralValue::Double(_) => Ty::Double,
            LiteralValue::Int(_) => Ty::Int,
            LiteralValue::Null => Ty::Null,
            LiteralValue::String(_) => Ty::String,
            LiteralValue::UInt(_) => Ty::UInt,
        },
        Expr::Ident(name) if VARIABLES.contains(&name.as_str()) => Ty::Int,
        Expr::Ident(name) if bound.iter().any(|b| b == name) => Ty::Dyn,
        Expr::Ident(name) => {
            return Err(format!(
                "unknown variable `{}`",
                crate::model::text::shorten(name)
            ));
        }
        Expr::List(list) => {
            for e in &list.elements {
                type_of(&e.expr, bound, depth)?;
            }
            Ty::List
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                check_entry(&entry.expr, bound, depth)?;
            }
            Ty::Map
        }
        Expr::Select(select) => match type_of(&select.operand.expr, bound, depth)? {
            Ty::Map | Ty::Dyn if select.test => Ty::Bool,
            Ty::Map | Ty::Dyn => Ty::Dyn,
            other => {
                return Err(format!(
                    "a {other} has no field `{}`",
                    crate::model::text::shorten(&select.field)
                ));
            }
        },
        Expr::Comprehension(c) => {
            type_of(&c.iter_range.expr, bound, depth)?;
            type_of(&c.accu_init.expr, bound, depth)?;
            let scope = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            let checked = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|e| type_of(&e.expr, bound, depth).map(|_| ()));
            bound.truncate(scope);
            checked?;
            Ty::Dyn
        }
        Expr::Call(call) => {
            let mut args = Vec::with_capacity(call.args.len() + 1);
            if let Some(target) = &call.target {
                args.push(type_of(&target.expr, bound, depth)?);
            }
            for a in &call.args {
                args.push(type_of(&a.expr, bound, depth)?);
            }
            call_type(&call.func_name, &args)?
        }
        Expr::Struct(_) => return Err("message literals are not supported".into()),
        Expr::Unspecified => return Err("an empty expression".into()),
    })
}

fn check_entry(
    entry: &cel::common::ast::EntryExpr,
    bound: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    match entry {
        cel::common::ast::EntryExpr::MapEntry(e) => {
            type_of(&e.key.expr, bound, depth)?;
            type_of(&e.value.expr, bound, depth)?;
        }
        cel::common::ast::EntryExpr::StructField(f) => {
            type_of(&f.value.expr, bound, depth)?;
        }
    }
    Ok(())
}

/// The result type of an operator or function applied to `args` (a method's target first).
fn call_type(name: &str, args: &[Ty]) -> Result<Ty, String> {
    let dyn_in = args.contains(&Ty::Dyn);
    let fail = || Err(no_overload(name, args));
    match (name, args) {
        (operators::ADD, [a, b]) if a == b && !matches!(a, Ty::Bool | Ty::Null | Ty::Map) => Ok(*a),
        (operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE, [a, b])
            if a == b && numeric(*a) =>
        {
            Ok(*a)
        }
        (operators::MODULO, [a, b]) if a == b && matches!(a, Ty::Int | Ty::UInt) => Ok(*a),
        (operators::NEGATE, [a]) if matches!(a, Ty::Int | Ty::Double) => Ok(*a),
        (
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE,
            _,
        ) if dyn_in => Ok(Ty::Dyn),
        (
            operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS,
            [a, b],
        ) if (numeric(*a) && numeric(*b))
            || (a == b && matches!(a, Ty::String | Ty::Bool | Ty::Bytes))
            || dyn_in =>
        {
            Ok(Ty::Bool)
        }
        (operators::EQUALS | operators::NOT_EQUALS | operators::IN, [_, _]) => Ok(Ty::Bool),
        (operators::LOGICAL_AND | operators::LOGICAL_OR, [a, b])
            if matches!(a, Ty::Bool | Ty::Dyn) && matches!(b, Ty::Bool | Ty::Dyn) =>
        {
            Ok(Ty::Bool)
        }
        (operators::LOGICAL_NOT | operators::NOT_STRICTLY_FALSE, [Ty::Bool | Ty::Dyn]) => {
            Ok(Ty::Bool)
        }
        (operators::CONDITIONAL, [Ty::Bool | Ty::Dyn, a, b]) => {
            if a == b {
                Ok(*a)
            } else if *a == Ty::Dyn || *b == Ty::Dyn {
                Ok(Ty::Dyn)
            } else {
                Err(format!(
                    "the branches of `? :` have different types ({a} and {b}); write both as ints"
                ))
            }
        }
        (operators::INDEX, [Ty::List | Ty::Map | Ty::Dyn, _]) => Ok(Ty::Dyn),
        ("int", [_]) => Ok(Ty::Int),
        ("uint", [_]) => Ok(Ty::UInt),
        ("double", [_]) => Ok(Ty::Double),
        ("string", [_]) => Ok(Ty::String),
        ("bool", [_]) => Ok(Ty::Bool),
        ("bytes", [_]) => Ok(Ty::Bytes),
        ("size", [Ty::String | Ty::Bytes | Ty::List | Ty::Map | Ty::Dyn]) => Ok(Ty::Int),
        ("contains" | "startsWith" | "endsWith" | "matches", [Ty::String | Ty::Dyn, _]) => {
            Ok(Ty::Bool)
        }
        ("max" | "min", args) if !args.is_empty() => {
            let first = args[0];
            if args.iter().all(|t| *t == first) && (numeric(first) || first == Ty::Dyn) {
                Ok(first)
            } else if args.iter().all(|t| numeric(*t) || *t == Ty::Dyn) {
                Ok(Ty::Dyn)
            } else {
                fail()
            }
        }
        (
            "int" | "uint" | "double" | "string" | "bool" | "bytes" | "size" | "contains"
            | "startsWith" | "endsWith" | "matches",
            _,
        )
        | (operators::ADD | operators::LESS | operators::LESS_EQUALS, _)
        | (operators::GREATER | operators::GREATER_EQUALS, _)
        | (operators::LOGICAL_AND | operators::LOGICAL_OR | operators::LOGICAL_NOT, _)
        | (operators::CONDITIONAL | operators::INDEX, _) => fail(),
        (other, _) => Err(format!(
            "unknown function `{}`",
            crate::model::text::shorten(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodeadm_style_expressions_pass() {
        for e in [
            "417",
            "20u",
            "max_pods",
            "(default_enis * (ips_per_eni - 1)) + 2",
            "max_pods > 100 ? 100 : max_pods * 2",
            "int(double(max_pods) * 0.9)",
            "[max_pods, 110].size() > 1 ? max_pods : 1",
            "max_pods - 100",
            "max_pods / 0",
        ] {
            MaxPodsExpression::compile(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        }
    }

    #[test]
    fn wrong_types_unknown_names_and_syntax_are_refused() {
        let cases = [
            ("'110'", "yields a string"),
            ("max_pods > 10", "yields a bool"),
            ("double(max_pods) / 2.0", "yields a double"),
            ("max_pods + 1u", "for (int, uint)"),
            ("max_pods > 1 ? 'a' : 2", "different types"),
            ("nope + 1", "unknown variable `nope`"),
            ("frobnicate(max_pods)", "unknown function `frobnicate`"),
            ("max_pods +", "not a valid CEL expression"),
            ("", "empty"),
        ];
        for (expr, want) in cases {
            let err = MaxPodsExpression::compile(expr).unwrap_err().to_string();
            assert!(err.contains(want), "{expr}: {err}");
        }
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let long = format!("1{}", " + 1".repeat(MAX_EXPRESSION_CHARS));
        let err = MaxPodsExpression::compile(&long).unwrap_err().to_string();
        assert!(err.contains("more than the limit of 256"), "{err}");
        assert!(err.len() < 400, "{err}");
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        let err = MaxPodsExpression::compile(&deep).unwrap_err().to_string();
        assert!(err.contains("nest more than 32"), "{err}");
        let quoted = format!("size('{}') + max_pods", "(".repeat(100));
        MaxPodsExpression::compile(&quoted).unwrap();
        // The deepest trees the limits allow compile, and evaluate on a test thread's stack.
        let chain = format!("1{}", "+1".repeat(MAX_TREE_DEPTH));
        let p = MaxPodsExpression::compile(&chain).unwrap();
        assert_eq!(
            p.program().execute(&cel::Context::default()),
            Ok(cel::Value::Int(33))
        );
        let err = MaxPodsExpression::compile(&format!("{chain}+1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 32 operations deep"), "{err}");
        let nested = format!("{}1{}", "(".repeat(32), ")".repeat(32));
        MaxPodsExpression::compile(&nested).unwrap();
        let ternaries = format!("{}1", "max_pods > 1 ? 1 : ".repeat(12));
        MaxPodsExpression::compile(&ternaries).unwrap();
        let err = MaxPodsExpression::compile("max_pods +")
            .unwrap_err()
            .to_string();
        assert!(err.len() < 500, "{err}");
    }
}
