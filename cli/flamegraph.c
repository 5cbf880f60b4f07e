/*
 * flamegraph.c — folded stacks and the interactive SVG (design in
 * flamegraph.h).
 */
#include "flamegraph.h"

#include <stdlib.h>
#include <stdint.h>
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

enum { WIDTH = 1200, MARGIN = 10, FRAME_H = 16, TOP = 44, BOTTOM = 28 };

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

static void color(const node *n, int depth, char *buf, size_t len)
{
    if (!depth) {
        snprintf(buf, len, "rgb(205,190,160)");
        return;
    }
    if (n->func->unknown) {
        snprintf(buf, len, "rgb(190,190,190)");
        return;
    }
    uint64_t h = ap_hash_bytes(n->func->name, strlen(n->func->name), 0);
    /* the "mem" palette of flamegraph.pl: greens and teals */
    snprintf(buf, len, "rgb(%d,%d,%d)", 40 + (int)(h % 80), 150 + (int)((h >> 8) % 90),
             60 + (int)((h >> 16) % 90));
}

typedef struct svgctx {
    FILE *out;
    int metric, height;
    double scale;
    int64_t total;
} svgctx;

static void frame(const svgctx *c, const node *n, int64_t x, int depth)
{
    double px = MARGIN + (double)x * c->scale, pw = (double)n->value * c->scale;
    if (pw < 0.1)
        return;
    const char *name = depth ? n->func->name : "all";
    char v[AP_FMT_LEN], pct[AP_FMT_LEN], fill[32];
    ap_fmt_metric(c->metric, n->value, false, v);
    ap_fmt_percent((double)n->value, (double)c->total, pct);
    color(n, depth, fill, sizeof fill);
    double y = c->height - BOTTOM - (depth + 1) * FRAME_H;
    fprintf(c->out, "<g class=\"f\" data-x=\"%lld\" data-w=\"%lld\" data-d=\"%d\" data-n=\"",
            (long long)x, (long long)n->value, depth);
    xml(c->out, name, SIZE_MAX);
    fputs("\"><title>", c->out);
    xml(c->out, name, SIZE_MAX);
    fprintf(c->out,
            " — %s (%s)</title><rect x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\" "
            "fill=\"%s\" rx=\"2\"/><text x=\"%.2f\" y=\"%.0f\">",
            v, pct, px, y, pw, FRAME_H - 1, fill, px + 3, y + FRAME_H - 4);
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

static const char script[] =
    "var W="
    "1200"
    ",M=10,frames,details,unzoomBtn,total;\n"
    "function init(evt){details=document.getElementById('details');\n"
    " unzoomBtn=document.getElementById('unzoom');\n"
    " frames=document.getElementById('frames').getElementsByTagName('g');\n"
    " for(var i=0;i<frames.length;i++){var g=frames[i];\n"
    "  if(g.getAttribute('data-d')==='0')total=num(g,'w');\n"
    "  g.onmouseover=function(){details.textContent=this.getElementsByTagName('title')[0]"
    ".textContent;};\n"
    "  g.onmouseout=function(){details.textContent=' ';};\n"
    "  g.onclick=function(){zoom(this);};}\n"
    " unzoomBtn.onclick=unzoom;\n"
    " document.addEventListener('keydown',function(e){if(e.key==='Escape')unzoom();});}\n"
    "function num(g,n){return parseFloat(g.getAttribute('data-'+n));}\n"
    "function fit(t,name,w){var n=Math.floor((w-6)/7);\n"
    " t.textContent=n<3?'':(name.length<=n?name:name.substring(0,n-2)+'..');}\n"
    "function place(g,x,w){var r=g.getElementsByTagName('rect')[0],"
    "t=g.getElementsByTagName('text')[0];\n"
    " r.setAttribute('x',x);r.setAttribute('width',w);t.setAttribute('x',x+3);\n"
    " fit(t,g.getAttribute('data-n'),w);}\n"
    "function zoom(z){var x0=num(z,'x'),w0=num(z,'w'),d0=num(z,'d'),s=(W-2*M)/w0;\n"
    " for(var i=0;i<frames.length;i++){var f=frames[i],x=num(f,'x'),w=num(f,'w'),d=num(f,'d');\n"
    "  if(d<d0&&x<=x0&&x+w>=x0+w0){f.setAttribute('class','f parent');place(f,M,W-2*M);}\n"
    "  else if(d>=d0&&x>=x0&&x+w<=x0+w0){f.setAttribute('class','f');place(f,M+(x-x0)*s,w*s);}\n"
    "  else f.setAttribute('class','f hide');}\n"
    " unzoomBtn.setAttribute('class','');}\n"
    "function unzoom(){var s=(W-2*M)/total;\n"
    " for(var i=0;i<frames.length;i++){var f=frames[i];f.setAttribute('class','f');\n"
    "  place(f,M+num(f,'x')*s,num(f,'w')*s);}\n"
    " unzoomBtn.setAttribute('class','hide');}\n";

static void svg_head(FILE *out, int height, const char *title)
{
    fprintf(out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n"
            "<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "xmlns=\"http://www.w3.org/2000/svg\" onload=\"init(evt)\">\n"
            "<style>text{font-family:monospace;font-size:12px;fill:#000}"
            ".f{cursor:pointer}.f:hover rect{stroke:#000;stroke-width:.8}"
            ".parent{opacity:.5}.hide{display:none}#title{font-size:17px}"
            "#unzoom{cursor:pointer;fill:#06c}</style>\n"
            "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#f8f8f4\"/>\n"
            "<text id=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\">",
            WIDTH, height, WIDTH, height, script, WIDTH / 2);
    xml(out, title, SIZE_MAX);
    fprintf(out,
            "</text>\n<text id=\"unzoom\" x=\"%d\" y=\"24\" class=\"hide\">Reset zoom</text>\n"
            "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n<g id=\"frames\">\n",
            MARGIN, MARGIN, height - 10);
}

void ap_flame_svg(FILE *out, const ap_profile *p, int metric, const char *title)
{
    node *root = build_tree(p, metric);
    int depth = sort_tree(root);
    svgctx c = {out, metric, TOP + depth * FRAME_H + BOTTOM, 0, root->value};
    c.scale = root->value > 0 ? (double)(WIDTH - 2 * MARGIN) / (double)root->value : 0;
    svg_head(out, c.height, title);
    if (root->value > 0)
        frame(&c, root, 0, 0);
    else
        fprintf(out, "<text x=\"%d\" y=\"%d\">nothing to show: no %s in this dump</text>\n", MARGIN,
                TOP + 10, ap_metric_names[metric]);
    fputs("</g>\n</svg>\n", out);
    free_tree(root);
}
