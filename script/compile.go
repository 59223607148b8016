package script

import (
	"errors"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// chunkName is the name Redis 7 gives every script: runtime errors say
// "user_script:LINE:".
const chunkName = "user_script"

// maxSyntaxDepth bounds how deeply a script's syntax may nest, counted in
// levels of the syntax tree. Lua 5.1 refuses nesting past 200 C calls in its
// parser ("chunk has too many syntax levels"); here the bound also keeps
// gopher-lua's recursive compiler, whose time grows with the square of the
// depth of some constructs, fast.
const maxSyntaxDepth = 200

// compiled returns the compiled body from the cache, compiling and caching it
// on a miss. The error's text is Redis's reply.
func compiled(sha, body string) (*lua.FunctionProto, error) {
	if p := protos.get(sha); p != nil {
		return p, nil
	}
	p, err := compile(body)
	if err != nil {
		return nil, err
	}
	protos.put(sha, p, len(body))
	return p, nil
}

// compile parses and compiles body as Redis 7 does: an optional "#!lua"
// shebang line, then a Lua chunk named user_script.
func compile(body string) (proto *lua.FunctionProto, err error) {
	src, err := stripShebang(body)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil { // gopher-lua's compiler panicked: refuse the script
			proto, err = nil, compileError(fmt.Sprintf("%s: %v", chunkName, r))
		}
	}()
	chunk, perr := parse.Parse(strings.NewReader(src), chunkName)
	if perr != nil {
		return nil, compileError(parseErrorText(perr, src))
	}
	chunk, line, ok := prepare(chunk)
	if !ok {
		return nil, compileError(fmt.Sprintf("%s:%d: chunk has too many syntax levels", chunkName, line))
	}
	proto, cerr := lua.Compile(chunk, chunkName)
	if cerr != nil {
		var ce *lua.CompileError
		if errors.As(cerr, &ce) {
			return nil, compileError(fmt.Sprintf("%s:%d: %s", chunkName, ce.Line, ce.Message))
		}
		return nil, compileError(fmt.Sprintf("%s: %v", chunkName, cerr))
	}
	if hasConcat(proto) {
		return nil, compileError(chunkName + ": expression too complex")
	}
	return proto, nil
}

// compileError is a compile failure as Redis replies it.
func compileError(msg string) error {
	return errors.New(oneLine("ERR Error compiling script (new function): " + msg))
}

// parseErrorText words a gopher-lua syntax error the way Lua does:
// "user_script:LINE: MESSAGE near 'TOKEN'".
func parseErrorText(err error, src string) string {
	var pe *parse.Error
	if !errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", chunkName, err)
	}
	if pe.Pos.Line == parse.EOF {
		return fmt.Sprintf("%s:%d: %s near '<eof>'", chunkName, strings.Count(src, "\n")+1, pe.Message)
	}
	return fmt.Sprintf("%s:%d: %s near '%s'", chunkName, pe.Pos.Line, pe.Message, pe.Token)
}

// shebangFlags are the flags Redis 7 accepts on a "#!lua" line. They are
// checked but change nothing here (see the package doc).
var shebangFlags = map[string]bool{
	"no-writes": true, "allow-oom": true, "allow-stale": true, "no-cluster": true, "allow-cross-slot-keys": true,
}

// stripShebang checks a leading "#!lua ..." line as Redis 7 does and blanks
// it, keeping its newline so that line numbers stay the script's own.
func stripShebang(body string) (string, error) {
	if !strings.HasPrefix(body, "#!") {
		return body, nil
	}
	end := strings.IndexByte(body, '\n')
	if end < 0 {
		return "", errors.New("ERR Invalid script shebang")
	}
	parts := strings.Fields(body[:end])
	if len(parts) == 0 || parts[0] != "#!lua" {
		return "", errors.New(oneLine("ERR Unexpected engine in script shebang: " + body[:end]))
	}
	for _, p := range parts[1:] {
		flags, ok := strings.CutPrefix(p, "flags=")
		if !ok {
			return "", errors.New(oneLine("ERR Unknown lua shebang option: " + p))
		}
		for _, f := range strings.Split(flags, ",") {
			if f != "" && !shebangFlags[f] {
				return "", errors.New(oneLine("ERR Unexpected flag in script shebang: " + f))
			}
		}
	}
	return body[end:], nil
}

// prepare walks the syntax tree. It reports whether it nests at most
// maxSyntaxDepth levels (and if not, the line where it goes deeper), and
// returns the chunk with every chain of concatenations a .. b .. c rewritten
// into one call of the library's concatenation, strConcat(a, b, c), through a
// hidden local (concatName) the chunk's first statement binds. gopher-lua
// compiles .. into an instruction that joins its operands with no bound, so
// that a doubling loop (s = s .. s) could grow the heap faster than the
// watchdog samples it; strConcat refuses a result longer than
// Limits.MaxString before allocating it, as every other function that builds
// strings does.
func prepare(chunk []ast.Stmt) (out []ast.Stmt, line int, ok bool) {
	w := syntaxWalker{}
	w.stmts(chunk, 1)
	if w.tooDeep {
		return chunk, w.line, false
	}
	if !w.concats {
		return chunk, 0, true
	}
	bind := &ast.LocalAssignStmt{Names: []string{concatName}, Exprs: []ast.Expr{&ast.IdentExpr{Value: concatName}}}
	bind.SetLine(1)
	bind.SetLastLine(1)
	return append([]ast.Stmt{bind}, chunk...), 0, true
}

// concatName names the global holding strConcat, and the chunk's local bound
// to it. No script can spell it (it is not an identifier), so none can
// shadow it.
const concatName = "(concat)"

// syntaxWalker is prepare's walk. It stops at maxSyntaxDepth, so that its
// own recursion is bounded.
type syntaxWalker struct {
	tooDeep bool
	line    int
	concats bool // some concatenation was rewritten
}

func (w *syntaxWalker) enter(n ast.PositionHolder, depth int) bool {
	if w.tooDeep {
		return false
	}
	if depth > maxSyntaxDepth {
		w.tooDeep, w.line = true, n.Line()
		return false
	}
	return true
}

func (w *syntaxWalker) stmts(ss []ast.Stmt, depth int) {
	for _, s := range ss {
		w.stmt(s, depth)
	}
}

func (w *syntaxWalker) exprs(es []ast.Expr, depth int) {
	for i := range es {
		es[i] = w.expr(es[i], depth)
	}
}

func (w *syntaxWalker) stmt(s ast.Stmt, depth int) {
	if !w.enter(s, depth) {
		return
	}
	depth++
	switch s := s.(type) {
	case *ast.AssignStmt:
		w.exprs(s.Lhs, depth)
		w.exprs(s.Rhs, depth)
	case *ast.LocalAssignStmt:
		w.exprs(s.Exprs, depth)
	case *ast.FuncCallStmt:
		s.Expr = w.expr(s.Expr, depth)
	case *ast.DoBlockStmt:
		w.stmts(s.Stmts, depth)
	case *ast.WhileStmt:
		s.Condition = w.expr(s.Condition, depth)
		w.stmts(s.Stmts, depth)
	case *ast.RepeatStmt:
		s.Condition = w.expr(s.Condition, depth)
		w.stmts(s.Stmts, depth)
	case *ast.IfStmt:
		s.Condition = w.expr(s.Condition, depth)
		w.stmts(s.Then, depth)
		w.stmts(s.Else, depth)
	case *ast.NumberForStmt:
		s.Init = w.expr(s.Init, depth)
		s.Limit = w.expr(s.Limit, depth)
		s.Step = w.expr(s.Step, depth)
		w.stmts(s.Stmts, depth)
	case *ast.GenericForStmt:
		w.exprs(s.Exprs, depth)
		w.stmts(s.Stmts, depth)
	case *ast.FuncDefStmt:
		if s.Name != nil {
			s.Name.Func = w.expr(s.Name.Func, depth)
			s.Name.Receiver = w.expr(s.Name.Receiver, depth)
		}
		s.Func = w.expr(s.Func, depth).(*ast.FunctionExpr)
	case *ast.ReturnStmt:
		w.exprs(s.Exprs, depth)
	}
}

// expr walks e and returns what replaces it.
func (w *syntaxWalker) expr(e ast.Expr, depth int) ast.Expr {
	if e == nil || !w.enter(e, depth) {
		return e
	}
	depth++
	switch e := e.(type) {
	case *ast.StringConcatOpExpr:
		var operands []ast.Expr
		w.concatOperands(e, depth, &operands)
		if w.tooDeep {
			return e
		}
		w.concats = true
		for _, o := range operands { // each operand gives one value, as in Lua
			switch o := o.(type) {
			case *ast.FuncCallExpr:
				o.AdjustRet = true
			case *ast.Comma3Expr:
				o.AdjustRet = true
			}
		}
		fn := &ast.IdentExpr{Value: concatName}
		fn.SetLine(e.Line())
		fn.SetLastLine(e.Line())
		call := &ast.FuncCallExpr{Func: fn, Args: operands, AdjustRet: true}
		call.SetLine(e.Line())
		call.SetLastLine(e.LastLine())
		return call
	case *ast.AttrGetExpr:
		e.Object = w.expr(e.Object, depth)
		e.Key = w.expr(e.Key, depth)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			f.Key = w.expr(f.Key, depth)
			f.Value = w.expr(f.Value, depth)
		}
	case *ast.FuncCallExpr:
		e.Func = w.expr(e.Func, depth)
		e.Receiver = w.expr(e.Receiver, depth)
		w.exprs(e.Args, depth)
	case *ast.LogicalOpExpr:
		e.Lhs = w.expr(e.Lhs, depth)
		e.Rhs = w.expr(e.Rhs, depth)
	case *ast.RelationalOpExpr:
		e.Lhs = w.expr(e.Lhs, depth)
		e.Rhs = w.expr(e.Rhs, depth)
	case *ast.ArithmeticOpExpr:
		e.Lhs = w.expr(e.Lhs, depth)
		e.Rhs = w.expr(e.Rhs, depth)
	case *ast.UnaryMinusOpExpr:
		e.Expr = w.expr(e.Expr, depth)
	case *ast.UnaryNotOpExpr:
		e.Expr = w.expr(e.Expr, depth)
	case *ast.UnaryLenOpExpr:
		e.Expr = w.expr(e.Expr, depth)
	case *ast.FunctionExpr:
		w.stmts(e.Stmts, depth)
	}
	return e
}

// concatOperands appends the operands of the concatenation e, in order,
// walking each (parentheses do not survive parsing, so (a .. b) .. c and
// a .. (b .. c) have the same operands).
func (w *syntaxWalker) concatOperands(e ast.Expr, depth int, out *[]ast.Expr) {
	c, ok := e.(*ast.StringConcatOpExpr)
	if !ok {
		*out = append(*out, w.expr(e, depth))
		return
	}
	if !w.enter(c, depth) {
		return
	}
	w.concatOperands(c.Lhs, depth+1, out)
	w.concatOperands(c.Rhs, depth+1, out)
}

// hasConcat reports whether a concatenation instruction is left in p or its
// nested functions, which prepare rewrote them all away from. The
// instruction layout (opcode in the top 6 bits) is gopher-lua's opcode.go.
func hasConcat(p *lua.FunctionProto) bool {
	for _, inst := range p.Code {
		if int(inst>>26) == lua.OP_CONCAT {
			return true
		}
	}
	for _, f := range p.FunctionPrototypes {
		if hasConcat(f) {
			return true
		}
	}
	return false
}
