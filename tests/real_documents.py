"""Documents written the way real ones are: a book chapter's HTML page with a site menu and a hidden
dialog, hard-wrapped plain text, and Markdown with headings, code, a list and a table."""

BOOK_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Storing UTF-8 Encoded Text with Strings - The Rust Programming Language</title>
</head><body>
<nav class="sidebar"><ol class="chapter"><li><a href="ch01.html">1. Getting Started</a></li>
<li><a href="ch08.html">8. Common Collections</a></li></ol></nav>
<div id="menu-bar"><h1 class="menu-title">The Rust Programming Language</h1></div>
<div id="help" class="hidden" style="display:none"><h1>Keyboard shortcuts</h1><p>Press ← or → to navigate</p></div>
<main>
<h1 id="storing"><a class="header" href="#storing">Storing UTF-8 Encoded Text with Strings</a></h1>
<p>We talked about strings in Chapter 4, but we’ll look at them in more depth now.
New Rustaceans commonly get stuck on strings for a combination of three reasons:
Rust’s propensity for exposing possible errors, strings being a more complicated
data structure than many programmers give them credit for, and UTF-8.</p>
<h2 id="what"><a class="header" href="#what">What Is a String?</a></h2>
<p>Rust has only one string type in the core language, which is the string slice
<code>str</code> that is usually seen in its borrowed form, <code>&amp;str</code>. String slices
are references to some UTF-8 encoded string data stored elsewhere.</p>
<ul><li>Strings are UTF-8 encoded.</li><li>Strings can grow.</li></ul>
<pre><code class="language-rust">fn main() {
    let mut s = String::new();
    s.push_str("bar");
}
</code></pre>
<table><tr><th>Type</th><th>Owned</th></tr><tr><td>String</td><td>yes</td></tr><tr><td>&amp;str</td><td>no</td></tr></table>
<h3 id="new">Creating a New String</h3>
<p>Many of the same operations available with <code>Vec&lt;T&gt;</code> are available with
<code>String</code> as well, because it is a wrapper around a vector of bytes.</p>
</main>
<footer><p>Copyright the authors</p></footer>
</body></html>"""


HARD_WRAPPED = """Notes on strings

Rust has only one string type in the core language, which is the string
slice str that is usually seen in its borrowed form, &str. In Chapter 4, we
talked about string slices, which are references to some UTF-8 encoded
string data stored elsewhere. The String type, which is provided by the
standard library rather than coded into the core language, is a growable,
mutable, owned, UTF-8 encoded string type. It is inter-
nationally minded.

Second part

A short paragraph here. It has two sentences.
"""


MARKDOWN = """# Guide

Intro paragraph that is
wrapped by its author. Second sentence.

## Install

Run the installer:

```sh
./install --prefix /opt/kb
echo done
```

### Check

- first item
- second item

| name | value |
|------|-------|
| a    | 1     |
"""
