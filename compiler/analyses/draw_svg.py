"""The drawing of :mod:`.draw` as one standalone SVG file, with a click-to-toggle script.

Each group is an SVG ``<g>`` holding two faces, ``.open`` (a frame, a header, its members) and
``.shut`` (one box); members sit at ``translate(x, y)`` inside their group, so the script only
has to recompute the grid offsets and the edges. The positions written into the file are those
of :func:`netc.compiler.analyses.draw.layout` for the starting state, so the picture is right
where scripts do not run (an ``<img>`` tag, an image viewer, a rasteriser).
"""

from __future__ import annotations

import json
from html import escape

from netc.compiler.analyses import draw
from netc.compiler.ir import Graph

STYLE = """
text{font-family:DejaVu Sans,Verdana,sans-serif;font-size:11px;fill:#111}
.nm{font-weight:bold}.op,.sub{fill:#333;font-size:10px}
.node rect{stroke:#555;stroke-width:1}
.open>rect.frame{fill:#6b8cce;fill-opacity:.07;stroke:#6b8cce;stroke-width:1}
.shut>rect{fill:#e6ecfa;stroke:#6b8cce;stroke-width:1.5}
.hd,.shut{cursor:pointer}.hd:hover,.shut:hover>rect{fill-opacity:.18}
.times{font-weight:bold;fill:#b02020;font-size:13px}
.edge{fill:none;stroke:#445;stroke-width:1.1;marker-end:url(#arrow)}
"""

# The browser half of netc.compiler.analyses.draw.layout and _visible: same rules, same constants.
SCRIPT = r"""
const M=JSON.parse(document.getElementById('netc-model').textContent), K=M.K;
const shut=new Set(M.shut), sz={}, off={}, abs={};
const el=id=>document.getElementById(id);
function hidden(m){const r=M.runs[m];return !!r&&r[0]!==m&&r.every(x=>shut.has(x.slice(2)));}
function size(m){if(m[0]==='n')return [K.NW,K.NH];if(hidden(m))return [0,0];
  if(shut.has(m.slice(2)))return [K.SW,K.SH];return lay(m.slice(2));}
function lay(name){const g=M.groups[name],cols={},ys={},xs={};let x=0,bottom=0;
  for(const [m,c] of g){const s=sz[m]=size(m);cols[c]=Math.max(cols[c]||0,s[0]);}
  for(const c of Object.keys(cols).map(Number).sort((a,b)=>a-b)){
    xs[c]=x;if(cols[c])x+=cols[c]+K.GX;}
  for(const [m,c,ps] of g){let y=0;
    for(const p of ps){const q=g[p][0];y=Math.max(y,ys[q]+(sz[q][1]?sz[q][1]+K.GY:0));}
    ys[m]=y;bottom=Math.max(bottom,y+sz[m][1]);}
  for(let i=g.length-1;i>=0;i--){const [m,c,,ss]=g[i];if(!ss.length||!c)continue;
    const below=Math.min(...ss.map(j=>ys[g[j][0]]));
    ys[m]=Math.max(ys[m],below-(sz[m][1]?sz[m][1]+K.GY:0));}
  const top=name?K.HEAD+K.PAD:K.PAD;
  for(const [m,c] of g)off[m]=[K.PAD+xs[c]+(cols[c]-sz[m][0])/2,top+ys[m]];
  return [Math.max(Math.max(x-K.GX,0)+2*K.PAD,M.mw[name]),bottom+top+K.PAD];}
function place(name,ox,oy){for(const [m] of M.groups[name]){const e=el(m),s=sz[m];
  if(!s[0]){e.setAttribute('display','none');continue;}
  e.removeAttribute('display');const x=ox+off[m][0],y=oy+off[m][1];abs[m]=[x,y,s[0],s[1]];
  e.setAttribute('transform','translate('+off[m][0]+','+off[m][1]+')');
  if(m[0]==='g'){const isShut=shut.has(m.slice(2)),o=e.querySelector(':scope>.open'),
      c=e.querySelector(':scope>.shut'),r=M.runs[m];
    o.style.display=isShut?'none':'';c.style.display=isShut?'':'none';
    const all=!!r&&r[0]===m&&r.every(q=>shut.has(q.slice(2)));
    c.querySelector('.times').textContent=all?'\u00d7 '+r.length:'';
    if(!isShut){const f=o.querySelector(':scope>rect.frame');f.setAttribute('width',s[0]);
      f.setAttribute('height',s[1]);place(m.slice(2),x,y);}}}}
function visible(n){const chain=[];let m=n;
  while(M.parent[m]){m='g-'+M.parent[m];chain.push(m);}
  for(const g of chain.reverse()){if(shut.has(g.slice(2)))return hidden(g)?M.runs[g][0]:g;}
  return n;}
let solid=[];
function bow(x1,y1,x2,y2){let right=null;if(Math.abs(x1-x2)>K.NW/2)return 0;
  for(const b of solid){if(b[1]<=y1)continue;if(b[1]>=y2-1)break;
    const x=x1+(b[1]+b[3]/2-y1)/(y2-y1)*(x2-x1);
    if(b[0]-2<x&&x<b[0]+b[2]+2)right=Math.max(right===null?b[0]+b[2]:right,b[0]+b[2]);}
  return right===null?0:(right+12-(x1+x2)/8)/0.75;}
function path(a,b){const x1=a[0]+a[2]/2,y1=a[1]+a[3],x2=b[0]+b[2]/2,y2=b[1],w=bow(x1,y1,x2,y2);
  if(w)return 'M'+x1+','+y1+' C'+w+','+(y1+30)+' '+w+','+(y2-30)+' '+x2+','+y2;
  const d=Math.max((y2-y1)/2,12);
  return 'M'+x1+','+y1+' C'+x1+','+(y1+d)+' '+x2+','+(y2-d)+' '+x2+','+y2;}
function isStop(m){return m[0]==='n'||shut.has(m.slice(2));}
function render(){for(const m in abs)delete abs[m];
  const [w,h]=lay(''),root=document.documentElement;
  const svg=root.tagName==='svg'?root:document.querySelector('svg');
  svg.setAttribute('width',w+K.BOW);svg.setAttribute('height',h);
  svg.setAttribute('viewBox','0 0 '+(w+K.BOW)+' '+h);place('',0,0);
  solid=Object.keys(abs).filter(isStop).map(m=>abs[m]).sort((a,b)=>a[1]-b[1]);
  const seen=new Set(),E=el('edges'),ns='http://www.w3.org/2000/svg';E.textContent='';
  for(const [u,v] of M.edges){const a=visible(u),b=visible(v),k=a+'>'+b;
    if(a===b||seen.has(k))continue;seen.add(k);const p=document.createElementNS(ns,'path');
    p.setAttribute('class','edge');p.setAttribute('d',path(abs[a],abs[b]));E.appendChild(p);}}
function toggle(name){const m='g-'+name,r=M.runs[m];
  if(shut.has(name)){if(r&&r[0]===m&&r.every(q=>shut.has(q.slice(2))))r.forEach(q=>shut.delete(q.slice(2)));
    else shut.delete(name);}else shut.add(name);render();}
for(const e of document.querySelectorAll('.grp')){const name=e.id.slice(2);
  e.querySelector(':scope>.open>.hd').addEventListener('click',ev=>{ev.stopPropagation();toggle(name);});
  e.querySelector(':scope>.shut').addEventListener('click',ev=>{ev.stopPropagation();toggle(name);});}
render();
window.netcShut=shut;// netc serve reads it to keep the groups a user shut across redraws
"""


def to_svg(graph: Graph, depth: int | None = None, shut: set[str] | None = None) -> str:
    """The standalone SVG of ``graph``; groups at level ``depth`` and deeper start shut, or
    the groups named in ``shut`` where it is given (names of no group here are ignored)."""
    model = draw.build_model(graph)
    if shut is None:
        shut = draw.initially_shut(model, depth)
    else:
        shut = {name for name in shut if name and name in model.groups}
    lay = draw.layout(model, shut)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width + draw.BOW:.0f}" '
           f'height="{lay.height:.0f}" viewBox="0 0 {lay.width + draw.BOW:.0f} '
           f'{lay.height:.0f}">',
           f"<title>{escape(graph.name)}</title><style>{STYLE}</style>",
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#445"/></marker>'
           "</defs>"]
    _members(out, model, model.groups[""], shut, lay)
    out.append('<g id="edges">')
    out += [f'<path class="edge" d="{draw.edge_path(a, b, bow)}"/>' for a, b, bow in lay.edges]
    out.append("</g>")
    data = {
        "K": {"NW": draw.NODE_W, "NH": draw.NODE_H, "SW": draw.SHUT_W, "SH": draw.SHUT_H,
              "PAD": draw.PAD, "HEAD": draw.HEAD, "GX": draw.GAP_X, "GY": draw.GAP_Y,
              "BOW": draw.BOW},
        "groups": {n: [[m, g.col[m], [g.members.index(p) for p in g.preds[m]],
                        [g.members.index(p) for p in g.succs[m]]]
                       for m in g.members] for n, g in model.groups.items()},
        "mw": {n: g.min_width for n, g in model.groups.items()},
        "runs": model.run_of, "parent": model.parent, "edges": model.edges,
        "shut": sorted(shut)}
    # "</" cannot occur in the JSON of identifiers and calls; escape it anyway for safety.
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    out.append(f'<script type="application/json" id="netc-model">{escape(text, False)}'
               "</script>")
    out.append(f"<script><![CDATA[{SCRIPT}]]></script></svg>")
    return "\n".join(out)


def _members(out: list[str], model: draw.Model, g: draw.Group, shut: set[str],
             lay: draw.Layout) -> None:
    for m in g.members:
        x, y = lay.offsets.get(m, (0.0, 0.0))
        box = lay.boxes.get(m)
        hide = "" if box is not None or _under_shut(model, shut, m) else ' display="none"'
        move = f'transform="translate({x:.1f},{y:.1f})"'
        if m.startswith("n-"):
            name, op, tip = model.labels[m]
            out.append(f'<g class="node" id="{m}" {move}{hide}><title>{escape(tip)}</title>'
                       f'<rect width="{draw.NODE_W}" height="{draw.NODE_H}" rx="4" '
                       f'fill="{draw.colour(model.ops[m])}"/>'
                       f'<text class="nm" x="6" y="15">{escape(draw.fit_text(name, 26))}</text>'
                       f'<text class="op" x="6" y="30">{escape(draw.fit_text(op, 30))}</text></g>')
            continue
        name = m[2:]
        is_shut = name in shut
        title, sub = draw.group_lines(model, name)
        w, h = (box.w, box.h) if box is not None and not is_shut else (0, 0)
        times = f"× {box.times}" if box is not None and box.times > 1 else ""
        out.append(f'<g class="grp" id="{m}" {move}{hide}><title>{escape(name)}</title>')
        out.append(f'<g class="open"{_NONE if is_shut else ""}>'
                   f'<rect class="frame" width="{w:.1f}" height="{h:.1f}" rx="6"/>'
                   f'<g class="hd"><text class="nm" x="8" y="15">{escape(title)}</text>'
                   f'<text class="sub" x="8" y="28">{escape(sub)}</text></g>')
        _members(out, model, model.groups[name], shut, lay)
        out.append("</g>")
        out.append(f'<g class="shut"{"" if is_shut else _NONE}>'
                   f'<rect width="{draw.SHUT_W}" height="{draw.SHUT_H}" rx="6"/>'
                   f'<text class="nm" x="8" y="16">{escape(draw.fit_text(title, 31))}</text>'
                   f'<text class="sub" x="8" y="30">{escape(draw.fit_text(name, 36))}</text>'
                   f'<text class="sub" x="8" y="43">{escape(draw.group_totals(model, name))}</text>'
                   f'<text class="times" x="{draw.SHUT_W - 8}" y="44" text-anchor="end">'
                   f"{times}</text></g></g>")


_NONE = ' style="display:none"'


def _under_shut(model: draw.Model, shut: set[str], m: str) -> bool:
    """Inside a shut group: not displayed because its ancestor's open face is hidden."""
    p = model.parent.get(m, "")
    while p:
        if p in shut:
            return True
        p = model.parent.get("g-" + p, "")
    return False
