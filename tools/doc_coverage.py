import sys,re,glob
total=0; missing=[]
files=[f for d in ['Sources','Agents','Environments'] for f in glob.glob(d+'/**/*.swift',recursive=True)]
for f in files:
    lines=open(f).read().split('\n')
    for i,l in enumerate(lines):
        s=l.strip()
        if re.match(r'(public |open )(static |final |mutating |override |private\(set\) |nonisolated\(unsafe\) )*(func|var|let|struct|enum|class|protocol|init|case|typealias|subscript)\b', s):
            if 'init(from decoder' in s or 'var description: String' in s or 'func encode(to' in s: continue
            total+=1
            j=i-1
            while j>=0 and lines[j].strip().startswith('@'): j-=1
            if not lines[j].strip().startswith('//'):
                missing.append(f"{f}:{i+1}: {s[:100]}")
print(total, len(missing))
import collections
c=collections.Counter(m.split(':')[0] for m in missing)
for k,v in c.most_common(40): print(v,k)
conf={'reset','step','observationSpace','actionSpace','name','snapshot','restore','contains','sample','flatten','unflatten','erase','element','descriptor','act','save','load','decide','values','learn','rolloutSettings','observationWidth','actionWidth','kind','plan','isDeterministic','callAsFunction','namedParameters','encode','classAttention','answerLogits','lastTokenAttention','fastVAnswerLogits','textEmbeddings','flops','fastVFLOPs','visualTokenCount','gridSize','tokenWidth','vocabularySize','flatDimension','distribution','value','logProbability','entropy','mode','make','task','word','codeWidth','version','close','hash','next','summary','description','count','shape'}
rest=[]
for m in missing:
    s=m.split(': ',1)[1]
    mm=re.search(r'(func|var|let|case|init|struct|enum|class|protocol|typealias|subscript)\s*([A-Za-z_]+)?',s)
    nm=mm.group(2) if mm else ''
    if nm in conf: continue
    rest.append(m)
print('non-conformance missing', len(rest))
c=collections.Counter(m.split(':')[0] for m in rest)
for k,v in c.most_common(15): print(v,k)
open('/tmp/missing.txt','w').write('\n'.join(rest))
