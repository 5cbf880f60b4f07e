/*
 * flamegraph.c — folded stacks and the interactive SVG (design in
 * flamegraph.h).
 */
#include "flamegraph.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "report.h"
#include "symbolize.h"

typedef struct node {
    const ap_func *func; /* NULL for the root */
    int64_t value;
    struct node **kids;
    size_t nkids, cap;
} node;

/* Per-stack values summed over the stack's buckets (threads). */
static int64_t *stack_values(const ap_profile *p, int metric)
{
    int64_t *v = ap_xcalloc(p->nstacks + 1, sizeof *v);
    for (size_t i = 0; i < p->nbuckets; i++) {
        const ap_bucket *b = &p->buckets[i];
        v[b->stack ? (size_t)(b->stack - p->stacks) : p->nstacks] += b->v[metric];
    }
    return v;
}

static void put_name(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s == ';' ? ':' : *s == '\n' ? ' ' : *s, out);
}

void ap_flame_folded(FILE *out, const ap_profile *p, int metric)
{
    int64_t *v = stack_values(p, metric);
    for (size_t k = 0; k <= p->nstacks; k++) {
        if (v[k] <= 0)
            continue;
        const ap_stack *st = k < p->nstacks ? &p->stacks[k] : NULL;
        if (!st || !st->nsym)
            fputs("[no stack]", out);
        for (uint32_t i = st ? st->nsym : 0; i-- > 0;) {
            put_name(out, st->sym[i]->func->name);
            if (i)
                fputc(';', out);
        }
        fprintf(out, " %lld\n", (long long)v[k]);
    }
    free(v);
}

static node *child(node *n, const ap_func *f)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->func == f)
            return n->kids[i];
    ap_grow(&n->kids, &n->cap, n->nkids + 1, sizeof *n->kids);
    node *c = ap_xcalloc(1, sizeof *c);
    c->func = f;
    n->kids[n->nkids++] = c;
    return c;
}

static void free_tree(node *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        free_tree(n->kids[i]);
    free(n->kids);
    free(n);
}

static int cmp_kids(const void *a, const void *b)
{
    const node *x = *(node *const *)a, *y = *(node *const *)b;
    return strcmp(x->func->name, y->func->name);
}

static int sort_tree(node *n)
{
    int depth = 0;
    if (n->nkids > 1)
        qsort(n->kids, n->nkids, sizeof *n->kids, cmp_kids);
    for (size_t i = 0; i < n->nkids; i++) {
        int d = sort_tree(n->kids[i]);
        depth = d > depth ? d : depth;
    }
    return depth + 1;
}

static node *build_tree(const ap_profile *p, int metric)
{
    static const ap_func no_stack = {"[no stack]", NULL, 0, true};
    int64_t *v = stack_values(p, metric);
    node *root = ap_xcalloc(1, sizeof *root);
    for (size_t k = 0; k <= p->nstacks; k++) {
        if (v[k] <= 0)
            continue;
        const ap_stack *st = k < p->nstacks ? &p->stacks[k] : NULL;
        node *n = root;
        n->value += v[k];
        if (!st || !st->nsym) {
            child(n, &no_stack)->value += v[k];
            continue;
        }
        for (uint32_t i = st->nsym; i-- > 0;) {
            n = child(n, st->sym[i]->func);
            n->value += v[k];
        }
    }
    free(v);
    return root;
}

/* ---- SVG ------------------------------------------------------------------ */

enum { WIDTH = 1200, MARGIN = 10, FRAME_H = 16, TOP = 62, LEGEND_H = 18 };

static void xml(FILE *out, const char *s, size_t max)
{
    for (size_t i = 0; *s && i < max; s++, i++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, out);
        }
    }
}

/* The module (executable or library) each function's code is in, from the
 * addresses that resolved to it; colours follow modules, so a user sees at
 * once how much memory libc, the interpreter or the program's own code asked
 * for. */
typedef struct modules {
    ap_map of_func;     /* func id -> 1 + index in names */
    const char **names; /* basename of the mapping, "[jit]", "[unknown]" */
    int64_t *value;     /* the leaf (self) value in each module */
    size_t n, cap, capv;
} modules;

static size_t module_index(modules *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name))
            return i;
    ap_grow(&m->names, &m->cap, m->n + 1, sizeof *m->names);
    ap_grow(&m->value, &m->capv, m->n + 1, sizeof *m->value);
    m->names[m->n] = name;
    m->value[m->n] = 0;
    return m->n++;
}

static void find_modules(modules *m, const ap_profile *p)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < p->naddrs; i++) {
        const ap_addr *a = &p->addrs[i];
        const char *mod = ap_addr_module(p, a);
        for (uint32_t k = 0; k < a->nlines; k++) {
            bool created;
            uint64_t *slot = ap_map_put(&m->of_func, a->lines[k]->func->id, &created);
            if (created)
                *slot = 1 + module_index(m, mod);
        }
    }
}

static int module_of(const modules *m, const ap_func *f)
{
    uint64_t *hit = f ? ap_map_get(&m->of_func, f->id) : NULL;
    return hit ? (int)*hit - 1 : -1;
}

/* A distinct, readable colour per module: hues around the circle by golden
 * ratio steps, light enough for black text. */
static void module_color(int mod, char *buf, size_t len)
{
    if (mod < 0) {
        snprintf(buf, len, "hsl(0,0%%,78%%)");
        return;
    }
    int hue = (int)(fmod(30.0 + mod * 137.508, 360.0));
    snprintf(buf, len, "hsl(%d,62%%,%d%%)", hue, 68 + (mod % 3) * 5);
}

typedef struct svgctx {
    FILE *out;
    int metric;
    double scale;
    int64_t total;
    modules *mods;
} svgctx;

static void leaf_values(modules *m, const node *n)
{
    int64_t self = n->value;
    for (size_t i = 0; i < n->nkids; i++) {
        self -= n->kids[i]->value;
        leaf_values(m, n->kids[i]);
    }
    int mod = module_of(m, n->func);
    if (mod >= 0 && self > 0)
        m->value[mod] += self;
}

static void frame(const svgctx *c, const node *n, int64_t x, int depth)
{
    double px = MARGIN + (double)x * c->scale, pw = (double)n->value * c->scale;
    if (pw < 0.1)
        return;
    const char *name = depth ? n->func->name : "all";
    char v[AP_FMT_LEN], pct[AP_FMT_LEN], fill[40];
    ap_fmt_metric(c->metric, n->value, false, v);
    ap_fmt_percent((double)n->value, (double)c->total, pct);
    int mod = depth ? module_of(c->mods, n->func) : -1;
    if (depth)
        module_color(mod, fill, sizeof fill);
    else
        snprintf(fill, sizeof fill, "hsl(40,30%%,80%%)");
    double y = TOP + depth * FRAME_H; /* an icicle: the root on top */
    fprintf(c->out,
            "<g class=\"f\" data-x=\"%lld\" data-w=\"%lld\" data-d=\"%d\" data-m=\"%d\" data-n=\"",
            (long long)x, (long long)n->value, depth, mod);
    xml(c->out, name, SIZE_MAX);
    fputs("\"><title>", c->out);
    xml(c->out, name, SIZE_MAX);
    if (depth && n->func->file) {
        fputs(" (", c->out);
        xml(c->out, n->func->file, SIZE_MAX);
        fputs(")", c->out);
    }
    if (mod >= 0) {
        fputs(" in ", c->out);
        xml(c->out, c->mods->names[mod], SIZE_MAX);
    }
    fprintf(c->out,
            " — %s (%s)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
            "fill=\"%s\" rx=\"2\"/><text x=\"%.2f\" y=\"%d\">",
            v, pct, px, (int)y, pw, FRAME_H - 1, fill, px + 3, (int)y + FRAME_H - 4);
    int chars = (int)((pw - 6) / 7);
    if (chars >= 3) {
        size_t len = strlen(name);
        xml(c->out, name, len <= (size_t)chars ? len : (size_t)chars - 2);
        if (len > (size_t)chars)
            fputs("..", c->out);
    }
    fputs("</text></g>\n", c->out);
    for (size_t i = 0; i < n->nkids; i++) {
        frame(c, n->kids[i], x, depth + 1);
        x += n->kids[i]->value;
    }
}

/* The page's behaviour: hover shows a frame (function, file, module, value
 * and share) in the status line; click zooms into it (its ancestors stay on
 * top at full width, dimmed; what is not under it hides; the picture's
 * height shrinks to the levels left) and "Reset zoom" or Escape go back;
 * "Search" (or Ctrl-F) asks for a regular expression, paints the matching
 * frames and sums them without counting a match inside a match twice. The
 * picture takes the window's width (viewBox). */
static const char script[] =
    "var W=1200,M=10,FH=16,TOP=62,frames,details,unzoomBtn,matched,svg,total,maxd,legendY;\n"
    "function init(evt){svg=document.documentElement;details=document.getElementById('details');\n"
    " unzoomBtn=document.getElementById('unzoom');matched=document.getElementById('matched');\n"
    " frames=document.getElementById('frames').getElementsByTagName('g');maxd=0;\n"
    " for(var i=0;i<frames.length;i++){var g=frames[i];var d=num(g,'d');if(d>maxd)maxd=d;\n"
    "  if(d===0)total=num(g,'w');\n"
    "  g.onmouseover=function(){details.textContent=this.getElementsByTagName('title')[0]"
    ".textContent;};\n"
    "  g.onmouseout=function(){details.textContent=' ';};\n"
    "  g.onclick=function(){zoom(this);};}\n"
    " unzoomBtn.onclick=unzoom;document.getElementById('search').onclick=askSearch;\n"
    " document.addEventListener('keydown',function(e){if(e.key==='Escape'){unzoom();"
    "search(null);}\n"
    "  if((e.ctrlKey||e.metaKey)&&e.key==='f'){e.preventDefault();askSearch();}});\n"
    " resize(maxd);}\n"
    "function num(g,n){return parseFloat(g.getAttribute('data-'+n));}\n"
    "function fit(t,name,w){var n=Math.floor((w-6)/7);\n"
    " t.textContent=n<3?'':(name.length<=n?name:name.substring(0,n-2)+'..');}\n"
    "function place(g,x,w){var r=g.getElementsByTagName('rect')[0],"
    "t=g.getElementsByTagName('text')[0];\n"
    " r.setAttribute('x',x);r.setAttribute('width',w);t.setAttribute('x',x+3);\n"
    " fit(t,g.getAttribute('data-n'),w);}\n"
    "function resize(deepest){var h=TOP+(deepest+1)*FH+16;\n"
    " document.getElementById('legend').setAttribute('transform','translate(0,'+h+')');\n"
    " var lh=parseFloat(document.getElementById('legend').getAttribute('data-h'));\n"
    " var total_h=h+lh+24;svg.setAttribute('viewBox','0 0 '+W+' '+total_h);\n"
    " svg.setAttribute('height',total_h);details.setAttribute('y',total_h-8);}\n"
    "function zoom(z){var x0=num(z,'x'),w0=num(z,'w'),d0=num(z,'d'),s=(W-2*M)/w0,deep=0;\n"
    " for(var i=0;i<frames.length;i++){var f=frames[i],x=num(f,'x'),w=num(f,'w'),d=num(f,'d');\n"
    "  if(d<d0&&x<=x0&&x+w>=x0+w0){f.setAttribute('class','f parent');place(f,M,W-2*M);}\n"
    "  else if(d>=d0&&x>=x0&&x+w<=x0+w0&&w*s>=0.1){f.setAttribute('class','f');"
    "place(f,M+(x-x0)*s,w*s);if(d>deep)deep=d;}\n"
    "  else f.setAttribute('class','f hide');}\n"
    " unzoomBtn.setAttribute('class','');resize(deep);}\n"
    "function unzoom(){var s=(W-2*M)/total;\n"
    " for(var i=0;i<frames.length;i++){var f=frames[i];f.setAttribute('class','f');\n"
    "  place(f,M+num(f,'x')*s,num(f,'w')*s);}\n"
    " unzoomBtn.setAttribute('class','hide');resize(maxd);}\n"
    "function askSearch(){var t=prompt('Search functions and files (regular expression)','');\n"
    " if(t!==null)search(t);}\n"
    "function search(term){var re=null,spans=[],sum=0;\n"
    " if(term){try{re=new RegExp(term);}catch(e){matched.textContent='bad expression';return;}}\n"
    " for(var i=0;i<frames.length;i++){var f=frames[i],r=f.getElementsByTagName('rect')[0];\n"
    "  if(!r.hasAttribute('data-fill'))r.setAttribute('data-fill',r.getAttribute('fill'));\n"
    "  var hit=re&&num(f,'d')>0&&re.test(f.getElementsByTagName('title')[0].textContent);\n"
    "  r.setAttribute('fill',hit?'rgb(230,0,230)':r.getAttribute('data-fill'));\n"
    "  f.setAttribute('data-hit',hit?'1':'0');\n"
    "  if(hit)spans.push([num(f,'x'),num(f,'x')+num(f,'w')]);}\n"
    " spans.sort(function(a,b){return a[0]-b[0];});var end=-1;\n"
    " for(var k=0;k<spans.length;k++){var a=spans[k][0],b=spans[k][1];\n"
    "  if(a>=end){sum+=b-a;end=b;}else if(b>end){sum+=b-end;end=b;}}\n"
    " matched.textContent=re?'Matched: '+fmt(sum)+' ('+(100*sum/total).toFixed(2)+'%)':'';\n"
    " matched.setAttribute('data-sum',sum);}\n"
    "function fmt(v){var u=svg.getAttribute('data-unit');if(u!=='bytes')return "
    "Math.round(v)+'';\n"
    " var k=['B','KiB','MiB','GiB','TiB'],i=0;while(v>=1024&&i<4){v/=1024;i++;}\n"
    " return (i?v.toPrecision(3):Math.round(v))+' '+k[i];}\n";

static void svg_head(FILE *out, int height, const char *title, const char *subtitle, int metric)
{
    fprintf(out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n"
            "<svg version=\"1.1\" width=\"100%%\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "preserveAspectRatio=\"xMinYMin meet\" data-unit=\"%s\" "
            "xmlns=\"http://www.w3.org/2000/svg\" onload=\"init(evt)\">\n"
            "<style>text{font-family:monospace;font-size:12px;fill:#000}"
            ".f{cursor:pointer}.f:hover rect{stroke:#000;stroke-width:.8}"
            ".parent{opacity:.5}.hide{display:none}#title{font-size:15px;font-weight:bold}#"
            "subtitle{font-size:11px;fill:#555}"
            "#unzoom,#search{cursor:pointer;fill:#06c}#matched{fill:#a0a}</style>\n"
            "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#f8f8f4\"/>\n"
            "<text id=\"title\" x=\"%d\" y=\"20\" text-anchor=\"middle\">",
            height, WIDTH, height, ap_metric_is_bytes(metric) ? "bytes" : "count", script,
            WIDTH / 2);
    xml(out, title, SIZE_MAX);
    fprintf(out, "</text>\n<text id=\"subtitle\" x=\"%d\" y=\"36\" text-anchor=\"middle\">",
            WIDTH / 2);
    xml(out, subtitle ? subtitle : "", SIZE_MAX);
    fprintf(out,
            "</text>\n<text id=\"unzoom\" x=\"%d\" y=\"54\" class=\"hide\">Reset zoom</text>\n"
            "<text id=\"search\" x=\"%d\" y=\"54\" text-anchor=\"end\">Search</text>\n"
            "<text id=\"matched\" x=\"%d\" y=\"54\" text-anchor=\"end\"> </text>\n"
            "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n<g id=\"frames\">\n",
            MARGIN, WIDTH - MARGIN, WIDTH - MARGIN - 60, MARGIN, height - 8);
}

static int cmp_mod_value(const void *a, const void *b, void *arg)
{
    const int64_t *v = arg;
    int x = *(const int *)a, y = *(const int *)b;
    return v[x] > v[y] ? -1 : v[x] < v[y];
}

/* The legend: each module's colour and its share (the memory its own code
 * asked for), largest first, as many rows as it takes. */
static int legend(FILE *out, const modules *m, int metric, int64_t total, int y)
{
    int *order = ap_xmalloc((m->n ? m->n : 1) * sizeof *order);
    for (size_t i = 0; i < m->n; i++)
        order[i] = (int)i;
    qsort_r(order, m->n, sizeof *order, cmp_mod_value, m->value);
    int x = MARGIN, rows = 1;
    fprintf(out, "<g id=\"legend\" transform=\"translate(0,%d)\" data-h=\"%%LEGEND_H%%\">\n", y);
    for (size_t k = 0; k < m->n; k++) {
        int i = order[k];
        if (m->value[i] <= 0)
            continue;
        char fill[40], v[AP_FMT_LEN], pct[AP_FMT_LEN];
        module_color(i, fill, sizeof fill);
        ap_fmt_metric(metric, m->value[i], false, v);
        ap_fmt_percent((double)m->value[i], (double)total, pct);
        int w = 30 + 7 * (int)(strlen(m->names[i]) + strlen(pct) + 3);
        if (x + w > WIDTH - MARGIN) {
            x = MARGIN;
            rows++;
        }
        int ry = (rows - 1) * LEGEND_H;
        fprintf(out,
                "<g class=\"legend\"><title>%s: %s (%s) allocated by its own code</title>"
                "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%d\" y=\"%d\">",
                m->names[i], v, pct, x, ry, fill, x + 18, ry + 11);
        xml(out, m->names[i], SIZE_MAX);
        fprintf(out, " %s</text></g>\n", pct);
        x += w;
    }
    fputs("</g>\n", out);
    free(order);
    return rows * LEGEND_H;
}

void ap_flame_svg(FILE *out, const ap_profile *p, int metric, const char *title,
                  const char *subtitle)
{
    node *root = build_tree(p, metric);
    int depth = sort_tree(root);
    modules mods;
    find_modules(&mods, p);
    leaf_values(&mods, root);
    /* the legend is measured first (into a scratch stream) so the height is known */
    char *buf = NULL;
    size_t len = 0;
    FILE *scratch = open_memstream(&buf, &len);
    int lh = legend(scratch, &mods, metric, root->value, 0);
    fclose(scratch);
    free(buf);
    int frames_h = TOP + depth * FRAME_H + 16;
    int height = frames_h + lh + 24;
    svgctx c = {out, metric, 0, root->value, &mods};
    c.scale = root->value > 0 ? (double)(WIDTH - 2 * MARGIN) / (double)root->value : 0;
    svg_head(out, height, title, subtitle, metric);
    if (root->value > 0)
        frame(&c, root, 0, 0);
    else
        fprintf(out, "<text x=\"%d\" y=\"%d\">nothing to show: no %s in this dump</text>\n", MARGIN,
                TOP + 10, ap_metric_names[metric]);
    fputs("</g>\n", out);
    /* the legend again, for real, with its height in place of the mark */
    buf = NULL;
    scratch = open_memstream(&buf, &len);
    legend(scratch, &mods, metric, root->value, frames_h);
    fclose(scratch);
    char lhs[16];
    snprintf(lhs, sizeof lhs, "%d", lh);
    char *mark = strstr(buf, "%LEGEND_H%");
    if (mark) {
        fwrite(buf, 1, (size_t)(mark - buf), out);
        fputs(lhs, out);
        fputs(mark + strlen("%LEGEND_H%"), out);
    } else {
        fputs(buf, out);
    }
    free(buf);
    fputs("</svg>\n", out);
    ap_map_free(&mods.of_func);
    free(mods.names);
    free(mods.value);
    free_tree(root);
}
